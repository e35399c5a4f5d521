namespace QuantServe.Api.Security;

/// <summary>The <c>QuantServe:Auth</c> configuration section: who may call the API.</summary>
public sealed class AuthOptions
{
    /// <summary>Section name.</summary>
    public const string Section = "QuantServe:Auth";

    /// <summary>Whether requests need an API key. The embedded default (here and in appsettings.json) is off, for local
    /// use, and the server says so at startup; a server with keys required but none configured refuses to start.</summary>
    public bool Enabled { get; set; }

    /// <summary>Keys written in configuration (appsettings.json, environment <c>QuantServe__Auth__Keys__0__Key</c>, …).</summary>
    public List<ApiKeyOptions> Keys { get; set; } = [];

    /// <summary>A file of keys, one <c>name:scopes:secret</c> line each (see <see cref="ApiKeyStore"/>); empty = none.</summary>
    public string? KeyFile { get; set; }

    /// <summary>Environment variable holding more keys as <c>name:scopes:secret</c> entries separated by <c>;</c>.</summary>
    public string KeysEnvironmentVariable { get; set; } = "QUANTSERVE_API_KEYS";
}

/// <summary>One configured API key: the secret itself or its SHA-256, a name (for logs and rate limits) and scopes.</summary>
public sealed class ApiKeyOptions
{
    /// <summary>The key as clients send it; or leave empty and give <see cref="KeyHash"/>.</summary>
    public string? Key { get; set; }

    /// <summary>Lower- or upper-case hex SHA-256 of the UTF-8 key, so configuration need not hold the secret.</summary>
    public string? KeyHash { get; set; }

    /// <summary>Who holds the key; names partitions of the rate limiter and appears in logs instead of the key.</summary>
    public string Name { get; set; } = "";

    /// <summary><c>inference</c> (/v1/*) and/or <c>admin</c> (/quantize, /models/*).</summary>
    public List<string> Scopes { get; set; } = [];
}

/// <summary>The <c>QuantServe:Limits</c> configuration section: per-caller rate and concurrency, body size, time and tokens.</summary>
public sealed class LimitsOptions
{
    /// <summary>Section name.</summary>
    public const string Section = "QuantServe:Limits";

    /// <summary>Requests one caller (key name, or IP address when anonymous) may start per <see cref="WindowSeconds"/>; 0 = unlimited.</summary>
    public int RequestsPerWindow { get; set; } = 600;

    /// <summary>Length of the rate-limit window in seconds.</summary>
    public int WindowSeconds { get; set; } = 60;

    /// <summary>Requests one caller may have in flight at once (a stream counts until it ends); 0 = unlimited.</summary>
    public int ConcurrentRequests { get; set; } = 32;

    /// <summary>Largest request body in bytes, model uploads to POST /quantize excepted (QuantServe:Uploads:MaxBytes bounds those).</summary>
    public long MaxRequestBodyBytes { get; set; } = 4L << 20;

    /// <summary>Seconds a request may run before it is cancelled with 504; 0 = no limit. Progress streams and uploads are exempt.</summary>
    public double RequestTimeoutSeconds { get; set; } = 600;

    /// <summary>Largest <c>max_tokens</c> / <c>max_completion_tokens</c> a request may ask for.</summary>
    public int MaxTokens { get; set; } = 4096;
}
