using System.Runtime.InteropServices;

namespace CloudArchive.Native;

/// <summary>
/// Confines this process, and every program it then runs, with the kernel's own means, before it executes a program:
/// Landlock (Linux 5.13 and later) lets it open, run and change only files beneath the paths it is given (and, from
/// Landlock ABI 4, bind or connect no TCP port; from ABI 6, reach no abstract socket and signal no process outside),
/// and a seccomp filter refuses connect(2) and io_uring outright, so no socket of another server (a production
/// cluster's Unix socket, where peer authentication would let this user in) can be reached. Neither can be lifted by
/// the confined programs (no_new_privs is set first). The drill runs its server, which runs a backup's catalog, this way.
/// </summary>
public static unsafe partial class Sandbox
{
    private const int CreateRulesetVersion = 1, RulePathBeneath = 1;
    private const long SysCreateRuleset = 444, SysAddRule = 445, SysRestrictSelf = 446;
    private const int PrSetNoNewPrivs = 38, PrSetSeccomp = 22, SeccompModeFilter = 2;
    private const int OPath = 0x200000, OCloExec = 0x80000;

    // Landlock's file system access rights (ABI 1 unless noted).
    private const ulong Execute = 1 << 0, WriteFile = 1 << 1, ReadFile = 1 << 2, ReadDir = 1 << 3, RemoveDir = 1 << 4, RemoveFile = 1 << 5,
        MakeChar = 1 << 6, MakeDir = 1 << 7, MakeReg = 1 << 8, MakeSock = 1 << 9, MakeFifo = 1 << 10, MakeBlock = 1 << 11, MakeSym = 1 << 12,
        Refer = 1 << 13 /* ABI 2 */, Truncate = 1 << 14 /* ABI 3 */, IoctlDev = 1 << 15 /* ABI 5 */;

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, nint arg1, nint arg2, nint arg3, nint arg4);

    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int PrCtl(int option, nint arg2, nint arg3, nint arg4, nint arg5);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "execv", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int ExecV(string path, nint* argv);

    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    private struct PathBeneath
    {
        public ulong AllowedAccess;
        public int ParentFd;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct SockFilter
    {
        public ushort Code;
        public byte JumpTrue, JumpFalse;
        public uint K;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct SockFprog
    {
        public ushort Length;
        public SockFilter* Filter;
    }

    /// <summary>The hidden command of this program that confines itself and then executes a program: <see cref="LaunchArguments"/>.</summary>
    public const string Command = "sandbox-exec";

    /// <summary>
    /// What every confined program reads besides its own paths: the system's programs and libraries, the dynamic
    /// linker's cache, the user and group names, the local time, random numbers. No other file of /etc (a config
    /// file with a store's key lives there), no home directory, no /proc or /sys, no /dev/shm, no /run or /tmp.
    /// </summary>
    public static readonly IReadOnlyList<string> SystemReadOnly =
    [
        "/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
        "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/localtime", "/dev/urandom", "/dev/random",
    ];

    /// <summary>What every confined program may write besides its own paths.</summary>
    public static readonly IReadOnlyList<string> SystemReadWrite = ["/dev/null"];

    /// <summary>
    /// The arguments of this program (after its own path) that run <paramref name="program"/> confined to
    /// <paramref name="readOnly"/> and <paramref name="readWrite"/> (and the system's paths above).
    /// </summary>
    public static IReadOnlyList<string> LaunchArguments(IEnumerable<string> readOnly, IEnumerable<string> readWrite, string program,
        IEnumerable<string> args) =>
        [Command, .. readOnly.SelectMany(p => new[] { "--read", p }), .. readWrite.SelectMany(p => new[] { "--write", p }), "--", program, .. args];

    /// <summary>
    /// The hidden command: parses what <see cref="LaunchArguments"/> wrote, confines this process and executes the
    /// program. Returns only on failure, with the reason; a caller that is not this program's own drill gains nothing
    /// from it but a confinement of its own.
    /// </summary>
    public static string Launch(IReadOnlyList<string> args)
    {
        List<string> readOnly = [.. SystemReadOnly], readWrite = [.. SystemReadWrite];
        var i = 1;
        for (; i + 1 < args.Count && args[i] is "--read" or "--write"; i += 2)
            (args[i] == "--read" ? readOnly : readWrite).Add(args[i + 1]);
        if (i >= args.Count || args[i] != "--" || i + 1 >= args.Count || !Path.IsPathRooted(args[i + 1])
            || readOnly.Concat(readWrite).Any(p => !Path.IsPathRooted(p)))
            return $"usage: {Command} [--read PATH | --write PATH]... -- /PROGRAM [ARG]...";
        try
        {
            Confine(readOnly, readWrite);
            return ExecuteProgram(args[i + 1], [.. args.Skip(i + 2)]).Message;
        }
        catch (IOException e)
        {
            return $"cannot confine {args[i + 1]}: {e.Message}";
        }
    }

    /// <summary>The Landlock ABI version this kernel offers; 0 when it has none (too old, not enabled, or refused by a seccomp profile).</summary>
    public static int LandlockAbi()
    {
        var abi = Syscall(SysCreateRuleset, 0, 0, CreateRulesetVersion, 0);
        return abi > 0 ? (int)abi : 0;
    }

    /// <summary>What the confinement holds back, in a few words, for the transcript.</summary>
    public static string Describe(int abi) =>
        abi >= 6 ? $"Landlock ABI {abi}: files, TCP, abstract sockets and signals; seccomp: connect"
        : abi >= 4 ? $"Landlock ABI {abi}: files and TCP; seccomp: connect"
        : $"Landlock ABI {abi}: files; seccomp: connect";

    /// <summary>
    /// Confines this thread (and what it executes): reading and running only beneath <paramref name="readOnly"/>,
    /// anything beneath <paramref name="readWrite"/>, nothing else; no connect(2), no io_uring. Paths that do not
    /// exist are passed over. Call it on the thread that then executes the program, with nothing in between.
    /// </summary>
    /// <exception cref="IOException">The kernel refused a step; the message names it.</exception>
    public static void Confine(IEnumerable<string> readOnly, IEnumerable<string> readWrite)
    {
        var abi = LandlockAbi();
        if (abi == 0) throw new IOException("this kernel offers no Landlock (Linux 5.13 or later, with landlock in its LSM list)");
        var handledFs = (MakeSym << 1) - 1;
        if (abi >= 2) handledFs |= Refer;
        if (abi >= 3) handledFs |= Truncate;
        if (abi >= 5) handledFs |= IoctlDev;
        // struct landlock_ruleset_attr grew with the ABI: handled_access_fs, then handled_access_net (4), then scoped (6).
        var attr = stackalloc ulong[3];
        attr[0] = handledFs;
        attr[1] = abi >= 4 ? 3UL : 0; // bind and connect TCP, with no port allowed
        attr[2] = abi >= 6 ? 3UL : 0; // abstract Unix sockets and signals of processes outside
        var size = abi >= 6 ? 24 : abi >= 4 ? 16 : 8;
        var ruleset = (int)Syscall(SysCreateRuleset, (nint)attr, size, 0, 0);
        if (ruleset < 0) throw Failed("landlock_create_ruleset");
        try
        {
            const ulong fileRights = Execute | WriteFile | ReadFile | Truncate | IoctlDev;
            foreach (var path in readOnly) Allow(ruleset, path, (Execute | ReadFile | ReadDir) & handledFs, fileRights);
            foreach (var path in readWrite) Allow(ruleset, path, handledFs & ~(MakeChar | MakeBlock), fileRights & handledFs);
            if (PrCtl(PrSetNoNewPrivs, 1, 0, 0, 0) != 0) throw Failed("prctl(PR_SET_NO_NEW_PRIVS)");
            if (Syscall(SysRestrictSelf, ruleset, 0, 0, 0) != 0) throw Failed("landlock_restrict_self");
        }
        finally
        {
            Close(ruleset);
        }
        RefuseConnect();
    }

    private static void Allow(int ruleset, string path, ulong directoryRights, ulong fileRights)
    {
        var fd = Open(path, OPath | OCloExec);
        if (fd < 0) return; // not on this system
        try
        {
            var rule = new PathBeneath { AllowedAccess = Directory.Exists(path) ? directoryRights : directoryRights & fileRights, ParentFd = fd };
            if (Syscall(SysAddRule, ruleset, RulePathBeneath, (nint)(&rule), 0) != 0) throw Failed($"landlock_add_rule {path}");
        }
        finally
        {
            Close(fd);
        }
    }

    /// <summary>
    /// A seccomp filter: connect(2) and io_uring (which could connect without the system call) fail with EACCES; so does
    /// every system call of another architecture's table (x32, or a 32-bit program's socketcall).
    /// </summary>
    private static void RefuseConnect()
    {
        var (arch, connect) = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => (0xC000003Eu, 42u),
            Architecture.Arm64 => (0xC00000B7u, 203u),
            var other => throw new IOException($"no seccomp filter for {other}"),
        };
        const ushort load = 0x20, jumpIfEqual = 0x15, jumpIfAtLeast = 0x35, ret = 0x06;
        const uint allow = 0x7fff0000, refuse = 0x00050000 | 13; // SECCOMP_RET_ERRNO | EACCES
        var program = stackalloc SockFilter[]
        {
            new() { Code = load, K = 4 },                                   // 0: arch
            new() { Code = jumpIfEqual, JumpTrue = 0, JumpFalse = 6, K = arch }, // 1: another table: refuse
            new() { Code = load, K = 0 },                                   // 2: number
            new() { Code = jumpIfAtLeast, JumpTrue = 4, JumpFalse = 0, K = 0x40000000 }, // 3: x32: refuse
            new() { Code = jumpIfEqual, JumpTrue = 3, JumpFalse = 0, K = connect },      // 4
            new() { Code = jumpIfAtLeast, JumpTrue = 0, JumpFalse = 1, K = 425 },        // 5: io_uring_setup, _enter, _register
            new() { Code = jumpIfAtLeast, JumpTrue = 0, JumpFalse = 1, K = 428 },        // 6
            new() { Code = ret, K = allow },                                // 7
            new() { Code = ret, K = refuse },                               // 8
        };
        var prog = new SockFprog { Length = 9, Filter = program };
        if (PrCtl(PrSetSeccomp, SeccompModeFilter, (nint)(&prog), 0, 0) != 0) throw Failed("seccomp");
    }

    /// <summary>Executes <paramref name="program"/> with <paramref name="args"/> in place of this process (the environment as it is); returns only on failure.</summary>
    public static IOException ExecuteProgram(string program, IReadOnlyList<string> args)
    {
        var argv = stackalloc nint[args.Count + 2];
        argv[0] = Marshal.StringToCoTaskMemUTF8(program);
        for (var i = 0; i < args.Count; i++) argv[i + 1] = Marshal.StringToCoTaskMemUTF8(args[i]);
        argv[args.Count + 1] = 0;
        ExecV(program, argv);
        return Failed($"execv {program}");
    }

    private static IOException Failed(string what) => new($"{what} failed (errno {Marshal.GetLastPInvokeError()})");
}
