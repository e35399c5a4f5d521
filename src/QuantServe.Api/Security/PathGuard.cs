namespace QuantServe.Api.Security;

/// <summary>Finds symbolic links that lead out of a models directory, so a writable models folder cannot be used to
/// serve (and so read back through the API) files elsewhere on the machine.</summary>
public static class PathGuard
{
    /// <summary>The path with every symbolic link along it resolved (the directory itself may be reached through links).</summary>
    public static string RealPath(string path)
    {
        string full = Path.GetFullPath(path);
        string root = Path.GetPathRoot(full)!;
        string current = root;
        // Resolve component by component: a link in the middle changes where the rest of the path points.
        for (int hops = 0; ; )
        {
            string rest = Path.GetRelativePath(current, full);
            if (rest == ".") return current;
            string head = rest.Split(Path.DirectorySeparatorChar)[0];
            string next = Path.Combine(current, head);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            if (info.LinkTarget is { } target)
            {
                if (++hops > 40) throw new IOException($"too many levels of symbolic links in {path}");
                string resolved = Path.GetFullPath(Path.IsPathRooted(target) ? target : Path.Combine(current, target));
                full = Path.GetFullPath(Path.Combine(resolved, Path.GetRelativePath(next, full)));
                current = root;
                continue;
            }
            current = next;
        }
    }

    /// <summary>The first link at or inside <paramref name="entry"/> (the entry itself, or a file at a folder entry's top
    /// level, where the loaders read) whose target lies outside <paramref name="root"/>; null when there is none.</summary>
    public static string? LinkOutside(string root, string entry)
    {
        string realRoot = RealPath(root).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        bool Inside(string p) => RealPath(p).StartsWith(realRoot, StringComparison.Ordinal);
        if (!Inside(entry)) return entry;
        if (Directory.Exists(entry))
            foreach (var f in Directory.EnumerateFileSystemEntries(entry))
                if (!Inside(f)) return f;
        return null;
    }
}
