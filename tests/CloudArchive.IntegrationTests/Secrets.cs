namespace CloudArchive.IntegrationTests;

/// <summary>The secrets of the test run: none of them may appear in anything cloudarchive prints.</summary>
public static class Secrets
{
    public static IReadOnlyList<string> All { get; } = Collect();

    public static void AssertNoneIn(string output)
    {
        foreach (var secret in All)
            Assert.False(output.Contains(secret, StringComparison.Ordinal), $"a secret ({secret.Length} chars, starting '{secret[..2]}') was printed");
    }

    private static List<string> Collect()
    {
        var found = new List<string>();
        if (Environment.GetEnvironmentVariable("AWS_SECRET_ACCESS_KEY") is { Length: > 0 } aws) found.Add(aws);
        if (Environment.GetEnvironmentVariable("CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING") is { Length: > 0 } conn)
        {
            found.Add(conn);
            foreach (var part in conn.Split(';'))
                if (part.StartsWith("AccountKey=", StringComparison.Ordinal)) found.Add(part["AccountKey=".Length..]);
        }
        return found;
    }
}
