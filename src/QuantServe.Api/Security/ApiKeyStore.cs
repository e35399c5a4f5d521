using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace QuantServe.Api.Security;

/// <summary>The two scopes a key may carry.</summary>
public static class ApiScopes
{
    /// <summary>Generation and model listing: everything under /v1.</summary>
    public const string Inference = "inference";

    /// <summary>Quantization jobs, uploads and model management: /quantize and /models.</summary>
    public const string Admin = "admin";

    /// <summary>Both, in the order the README lists them.</summary>
    public static readonly IReadOnlyList<string> All = [Inference, Admin];
}

/// <summary>A caller the server recognised: the key's name and scopes (never the key).</summary>
/// <param name="Name">The key's configured name.</param>
/// <param name="Scopes">Its scopes.</param>
public sealed record ApiCaller(string Name, IReadOnlySet<string> Scopes)
{
    /// <summary>Whether the caller may use routes needing <paramref name="scope"/>.</summary>
    public bool Has(string scope) => Scopes.Contains(scope);
}

/// <summary>
/// Every API key the server accepts, from configuration (<c>QuantServe:Auth:Keys</c>), the key file and the environment
/// variable. Only SHA-256 digests are kept; a presented key is hashed and compared against every digest with
/// <see cref="CryptographicOperations.FixedTimeEquals"/>, without stopping at a match, so timing reveals neither which
/// key matched nor how much of one did.
/// </summary>
/// <remarks>Key file lines and environment entries read <c>name:scopes:secret</c>: scopes joined by <c>,</c> or <c>+</c>,
/// the secret either the key itself or <c>sha256:</c> followed by its hex digest. Blank lines and <c>#</c> comments are
/// skipped; environment entries are separated by <c>;</c> or new lines.</remarks>
public sealed class ApiKeyStore
{
    private readonly (byte[] Digest, ApiCaller Caller)[] _keys;

    /// <summary>Reads and checks every source; an unusable entry throws <see cref="InvalidOperationException"/> naming it.</summary>
    public ApiKeyStore(IOptions<AuthOptions> options)
    {
        var o = options.Value;
        Enabled = o.Enabled;
        var keys = new List<(byte[], ApiCaller)>();
        for (int i = 0; i < o.Keys.Count; i++)
        {
            var k = o.Keys[i];
            string where = $"QuantServe:Auth:Keys:{i}";
            if (string.IsNullOrEmpty(k.Key) == string.IsNullOrEmpty(k.KeyHash))
                throw new InvalidOperationException($"{where} ('{k.Name}') needs exactly one of Key and KeyHash");
            keys.Add(Entry(where, k.Name, k.Scopes, k.Key is { Length: > 0 } ? k.Key : "sha256:" + k.KeyHash));
        }
        if (!string.IsNullOrWhiteSpace(o.KeyFile))
        {
            string path = Path.GetFullPath(o.KeyFile);
            if (!File.Exists(path)) throw new InvalidOperationException($"API key file {path} (QuantServe:Auth:KeyFile) does not exist");
            string[] lines = File.ReadAllLines(path);
            for (int i = 0; i < lines.Length; i++)
                if (ParseLine(lines[i], $"{path} line {i + 1}") is { } e) keys.Add(e);
        }
        if (Environment.GetEnvironmentVariable(o.KeysEnvironmentVariable) is { Length: > 0 } env)
        {
            string[] entries = env.Split([';', '\n'], StringSplitOptions.None);
            for (int i = 0; i < entries.Length; i++)
                if (ParseLine(entries[i], $"{o.KeysEnvironmentVariable} entry {i + 1}") is { } e) keys.Add(e);
        }
        var dup = keys.GroupBy(k => k.Item2.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new InvalidOperationException($"API key name '{dup.Key}' is used by {dup.Count()} keys; names identify callers and must be unique");
        if (Enabled && keys.Count == 0)
            throw new InvalidOperationException(
                $"API keys are required (QuantServe:Auth:Enabled) but none is configured: add QuantServe:Auth:Keys, a QuantServe:Auth:KeyFile or {o.KeysEnvironmentVariable}, or set QuantServe:Auth:Enabled=false to run open");
        _keys = keys.ToArray();
    }

    /// <summary>Whether requests need a key.</summary>
    public bool Enabled { get; }

    /// <summary>Number of keys accepted.</summary>
    public int Count => _keys.Length;

    /// <summary>The caller owning <paramref name="key"/>, or null when no key matches.</summary>
    public ApiCaller? Find(string key)
    {
        byte[] digest = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        ApiCaller? found = null;
        foreach (var (d, caller) in _keys)
            if (CryptographicOperations.FixedTimeEquals(d, digest)) found = caller;
        return found;
    }

    private static (byte[], ApiCaller)? ParseLine(string line, string where)
    {
        string t = line.Trim();
        if (t.Length == 0 || t.StartsWith('#')) return null;
        int a = t.IndexOf(':'), b = a < 0 ? -1 : t.IndexOf(':', a + 1);
        if (b < 0) throw new InvalidOperationException($"{where}: expected name:scopes:secret");
        return Entry(where, t[..a].Trim(), t[(a + 1)..b].Split([',', '+'], StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries), t[(b + 1)..].Trim());
    }

    private static (byte[], ApiCaller) Entry(string where, string name, IEnumerable<string> scopes, string secret)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new InvalidOperationException($"{where}: the key has no name");
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in scopes)
        {
            string scope = s.Trim().ToLowerInvariant();
            if (!ApiScopes.All.Contains(scope))
                throw new InvalidOperationException($"{where} ('{name}'): unknown scope '{s}'; scopes are {string.Join(", ", ApiScopes.All)}");
            set.Add(scope);
        }
        if (set.Count == 0) throw new InvalidOperationException($"{where} ('{name}'): no scopes; give {string.Join(" and/or ", ApiScopes.All)}");
        byte[] digest;
        if (secret.StartsWith("sha256:", StringComparison.OrdinalIgnoreCase))
        {
            string hex = secret["sha256:".Length..];
            if (hex.Length != 64 || !hex.All(Uri.IsHexDigit))
                throw new InvalidOperationException($"{where} ('{name}'): a key hash is 64 hex digits (SHA-256)");
            digest = Convert.FromHexString(hex);
        }
        else
        {
            // Short keys can be guessed; the message never repeats the key.
            if (secret.Length < 16) throw new InvalidOperationException($"{where} ('{name}'): keys need at least 16 characters");
            if (secret.Any(char.IsWhiteSpace)) throw new InvalidOperationException($"{where} ('{name}'): keys cannot contain white space");
            digest = SHA256.HashData(Encoding.UTF8.GetBytes(secret));
        }
        return (digest, new ApiCaller(name, set));
    }
}
