using CloudArchive.Core.Backup;

namespace CloudArchive.Core.Tests;

/// <summary>A drill takes from a backup's configuration only how its data reads, and only plain values.</summary>
public sealed class ServerConfigFileTests
{
    [Fact]
    public void OnlyPlainValuesOfTheReadingSettingsAreTakenTheLastWinning()
    {
        var conf = """
            # initdb's
            timezone = 'Etc/UTC'
            datestyle = 'iso, mdy'
            lc_monetary = 'C.UTF-8'		# locale for monetary formatting
            default_text_search_config = 'pg_catalog.english'
            shared_preload_libraries = '/data/x.so'
            include = '/elsewhere/more.conf'
            """;
        var auto = """
            TimeZone = 'America/New_York'
            lc_time '../../../etc/passwd'
            lc_numeric = 'a''b'
            intervalstyle = postgres
            datestyle = 'iso, dmy' junk
            """;

        Assert.Equal(
            ["timezone = 'America/New_York'", "datestyle = 'iso, mdy'", "intervalstyle = 'postgres'", "lc_monetary = 'C.UTF-8'",
             "default_text_search_config = 'pg_catalog.english'"],
            ServerConfigFile.TakenSettings(conf, auto));
    }
}
