using System.Globalization;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using QuantServe.Api.Hosting;

namespace QuantServe.Api.Quantization;

/// <summary>
/// The jobs table in SQLite (DataDirectory/jobs.db, WAL journal). Every write is one transaction; state changes are
/// conditional updates (e.g. queued → running only if still queued) so a cancel and a worker cannot both win.
/// </summary>
public sealed class JobStore
{
    private readonly string _connectionString;

    /// <summary>Opens (creating if needed) the database under the data directory.</summary>
    public JobStore(IOptions<QuantServeOptions> options)
    {
        DataDirectory = options.Value.ResolveDataDirectory();
        Directory.CreateDirectory(DataDirectory);
        DatabasePath = Path.Combine(DataDirectory, "jobs.db");
        _connectionString = new SqliteConnectionStringBuilder { DataSource = DatabasePath, Pooling = true, DefaultTimeout = 30 }.ToString();
        using var c = Open();
        Exec(c, null, "PRAGMA journal_mode=WAL;");
        Exec(c, null, """
            CREATE TABLE IF NOT EXISTS jobs (
              id TEXT PRIMARY KEY, model TEXT NOT NULL, method TEXT NOT NULL, options TEXT NOT NULL,
              status TEXT NOT NULL, stage TEXT, progress REAL NOT NULL DEFAULT 0,
              created TEXT NOT NULL, started TEXT, finished TEXT, error TEXT, result TEXT);
            CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created);
            """);
    }

    /// <summary>The data directory (absolute).</summary>
    public string DataDirectory { get; }

    /// <summary>The database file.</summary>
    public string DatabasePath { get; }

    private SqliteConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        using var cmd = c.CreateCommand();
        // WAL with synchronous=NORMAL stays consistent after a crash (only the last commits can be lost on power failure).
        cmd.CommandText = "PRAGMA busy_timeout=30000; PRAGMA synchronous=NORMAL;";
        cmd.ExecuteNonQuery();
        return c;
    }

    private static int Exec(SqliteConnection c, SqliteTransaction? t, string sql, params (string, object?)[] args)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = t;
        cmd.CommandText = sql;
        foreach (var (k, v) in args) cmd.Parameters.AddWithValue(k, v ?? DBNull.Value);
        return cmd.ExecuteNonQuery();
    }

    private int Write(string sql, params (string, object?)[] args)
    {
        using var c = Open();
        using var t = c.BeginTransaction();
        int n = Exec(c, t, sql, args);
        t.Commit();
        return n;
    }

    private static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    private static DateTimeOffset? ReadTime(SqliteDataReader r, int i)
        => r.IsDBNull(i) ? null : DateTimeOffset.Parse(r.GetString(i), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    /// <summary>Adds a queued job.</summary>
    public void Insert(JobRecord job)
        => Write("INSERT INTO jobs(id, model, method, options, status, progress, created) VALUES ($id, $m, $me, $o, $s, 0, $c)",
            ("$id", job.Id), ("$m", job.Model), ("$me", job.Method), ("$o", job.OptionsJson), ("$s", job.Status), ("$c", Time(job.Created)));

    /// <summary>The job, or null.</summary>
    public JobRecord? Find(string id) => Query("WHERE id = $id", ("$id", id)).FirstOrDefault();

    /// <summary>Jobs newest first, <paramref name="limit"/> from <paramref name="offset"/>, and the total count.</summary>
    public (IReadOnlyList<JobRecord> Jobs, long Total) List(int offset, int limit)
    {
        var jobs = Query("ORDER BY created DESC, id LIMIT $l OFFSET $o", ("$l", limit), ("$o", offset));
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM jobs";
        return (jobs, (long)cmd.ExecuteScalar()!);
    }

    /// <summary>Ids of queued jobs, oldest first.</summary>
    public IReadOnlyList<string> QueuedIds() => Query("WHERE status = 'queued' ORDER BY created, id").Select(j => j.Id).ToList();

    /// <summary>Jobs left running by a crash go back to the queue; returns how many.</summary>
    public int RequeueInterrupted()
        => Write("UPDATE jobs SET status = 'queued', stage = NULL, progress = 0, started = NULL WHERE status = 'running'");

    /// <summary>queued → running; false if the job is no longer queued (cancelled meanwhile).</summary>
    public bool TryStart(string id, DateTimeOffset now)
        => Write("UPDATE jobs SET status = 'running', started = $t, stage = 'load', progress = 0 WHERE id = $id AND status = 'queued'",
            ("$id", id), ("$t", Time(now))) == 1;

    /// <summary>Records progress of a running job.</summary>
    public void Progress(string id, string stage, double progress)
        => Write("UPDATE jobs SET stage = $st, progress = $p WHERE id = $id AND status = 'running'",
            ("$id", id), ("$st", stage), ("$p", Math.Clamp(progress, 0, 1)));

    /// <summary>running → succeeded with its result.</summary>
    public void Succeed(string id, string resultJson, DateTimeOffset now)
        => Write("UPDATE jobs SET status = 'succeeded', stage = 'done', progress = 1, finished = $t, result = $r WHERE id = $id AND status = 'running'",
            ("$id", id), ("$t", Time(now)), ("$r", resultJson));

    /// <summary>running → failed with <paramref name="error"/>.</summary>
    public void Fail(string id, string error, DateTimeOffset now)
        => Write("UPDATE jobs SET status = 'failed', finished = $t, error = $e WHERE id = $id AND status = 'running'",
            ("$id", id), ("$t", Time(now)), ("$e", error));

    /// <summary>queued or running → cancelled; false when the job was already terminal.</summary>
    public bool Cancel(string id, DateTimeOffset now)
        => Write("UPDATE jobs SET status = 'cancelled', finished = $t WHERE id = $id AND status IN ('queued', 'running')",
            ("$id", id), ("$t", Time(now))) == 1;

    /// <summary>Number of jobs per status.</summary>
    public long Count(string status)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM jobs WHERE status = $s";
        cmd.Parameters.AddWithValue("$s", status);
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>Results (JSON) of succeeded jobs of source model <paramref name="model"/>.</summary>
    public IReadOnlyList<JobRecord> Succeeded(string model)
        => Query("WHERE status = 'succeeded' AND model = $m ORDER BY finished", ("$m", model));

    private List<JobRecord> Query(string tail, params (string, object?)[] args)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT id, model, method, options, status, stage, progress, created, started, finished, error, result FROM jobs " + tail;
        foreach (var (k, v) in args) cmd.Parameters.AddWithValue(k, v ?? DBNull.Value);
        using var r = cmd.ExecuteReader();
        var list = new List<JobRecord>();
        while (r.Read())
            list.Add(new JobRecord
            {
                Id = r.GetString(0), Model = r.GetString(1), Method = r.GetString(2), OptionsJson = r.GetString(3),
                Status = r.GetString(4), Stage = r.IsDBNull(5) ? null : r.GetString(5), Progress = r.GetDouble(6),
                Created = ReadTime(r, 7)!.Value, Started = ReadTime(r, 8), Finished = ReadTime(r, 9),
                Error = r.IsDBNull(10) ? null : r.GetString(10), ResultJson = r.IsDBNull(11) ? null : r.GetString(11),
            });
        return list;
    }
}
