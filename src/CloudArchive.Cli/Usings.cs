// What every command file of the CLI uses: the parser, invariant formatting, and Core's exit codes, settings and output.
global using System.CommandLine;
global using System.Globalization;
global using System.Text.Json;
global using CloudArchive.Core;
global using CloudArchive.Core.Configuration;
global using CloudArchive.Core.Output;
