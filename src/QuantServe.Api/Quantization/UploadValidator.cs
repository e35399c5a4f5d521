using System.Formats.Tar;
using System.IO.Compression;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Quantization;

/// <summary>An upload the validator refused; the message says why.</summary>
public sealed class UploadRejectedException(string message, int status = StatusCodes.Status400BadRequest) : Exception(message)
{
    /// <summary>HTTP status to answer with.</summary>
    public int Status { get; } = status;
}

/// <summary>
/// Checks an uploaded model before a job is accepted: a .gguf must parse; a .zip or .tar must hold only regular files
/// and folders (no links, devices, absolute paths or <c>..</c>), at most the configured number of entries and expanded
/// bytes, and extract to a folder the model loader recognises.
/// </summary>
public static class UploadValidator
{
    /// <summary>Validates <paramref name="file"/> named <paramref name="fileName"/> by the client; returns the model source
    /// (the GGUF itself, or the folder an archive was extracted into, under <paramref name="extractRoot"/>).</summary>
    public static string Validate(string file, string fileName, string extractRoot, UploadSettings limits)
    {
        string lower = fileName.ToLowerInvariant();
        if (lower.EndsWith(".gguf"))
        {
            try { using var g = GgufFile.Open(file); GgufModelLoader.Load(file).Dispose(); }
            catch (ModelLoadException e) { throw new UploadRejectedException($"'{fileName}' is not a usable GGUF model: {e.Problem()}"); }
            return file;
        }
        if (lower.EndsWith(".zip")) ExtractZip(file, fileName, extractRoot, limits);
        else if (lower.EndsWith(".tar")) ExtractTar(file, fileName, extractRoot, limits);
        else throw new UploadRejectedException($"'{fileName}': expected a .gguf file or a .zip/.tar archive of a model folder");

        // An archive may hold the model folder itself or one folder containing it.
        string root = extractRoot;
        var dirs = Directory.GetDirectories(root);
        if (ModelLoader.DetectFormat(root) is null && dirs.Length == 1 && Directory.GetFiles(root).Length == 0) root = dirs[0];
        if (ModelLoader.DetectFormat(root) is null)
            throw new UploadRejectedException($"'{fileName}' holds neither a Hugging Face model (config.json) nor a llama2.c checkpoint with its tokenizer");
        return root;
    }

    private static string Problem(this ModelLoadException e) => e.Message;

    private static string Target(string root, string entryName, string fileName)
    {
        if (entryName.Any(char.IsControl))
            throw new UploadRejectedException($"'{fileName}': an entry name contains a control character");
        if (string.IsNullOrEmpty(entryName) || Path.IsPathRooted(entryName) || entryName.StartsWith('/') || entryName.StartsWith('\\')
            || entryName.Contains(':'))
            throw new UploadRejectedException($"'{fileName}': entry '{entryName}' has an absolute path");
        var parts = entryName.Split('/', '\\');
        if (parts.Any(p => p == ".."))
            throw new UploadRejectedException($"'{fileName}': entry '{entryName}' leaves the archive's folder");
        string full = Path.GetFullPath(Path.Combine(root, entryName));
        if (!full.StartsWith(Path.GetFullPath(root) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new UploadRejectedException($"'{fileName}': entry '{entryName}' leaves the archive's folder");
        return full;
    }

    private static void ExtractZip(string file, string fileName, string root, UploadSettings limits)
    {
        ZipArchive zip;
        try { zip = ZipFile.OpenRead(file); }
        catch (InvalidDataException e) { throw new UploadRejectedException($"'{fileName}' is not a valid zip archive: {e.Message}"); }
        using (zip)
        {
            if (zip.Entries.Count > limits.MaxArchiveEntries)
                throw new UploadRejectedException($"'{fileName}' has {zip.Entries.Count} entries; at most {limits.MaxArchiveEntries} are accepted");
            long expanded = 0;
            foreach (var e in zip.Entries)
            {
                // Unix mode lives in the high 16 bits of the external attributes; 0xA000 marks a symbolic link.
                int mode = (e.ExternalAttributes >> 16) & 0xF000;
                if (mode == 0xA000) throw new UploadRejectedException($"'{fileName}': entry '{e.FullName}' is a symbolic link");
                Target(root, e.FullName, fileName);
                expanded += e.Length;
                if (expanded > limits.MaxExpandedBytes)
                    throw new UploadRejectedException($"'{fileName}' expands to more than {limits.MaxExpandedBytes} bytes", StatusCodes.Status413PayloadTooLarge);
            }
            Directory.CreateDirectory(root);
            long written = 0;
            foreach (var e in zip.Entries)
            {
                string target = Target(root, e.FullName, fileName);
                if (e.FullName.EndsWith('/')) { Directory.CreateDirectory(target); continue; }
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                try { written = CopyBounded(e, target, written, fileName, limits.MaxExpandedBytes); }
                catch (InvalidDataException ex) { throw new UploadRejectedException($"'{fileName}': entry '{e.FullName}' is corrupt: {ex.Message}"); }
            }
        }
    }

    /// <summary>Inflates one entry, counting the bytes actually produced: the sizes a zip declares are the sender's word,
    /// and a bomb may understate them.</summary>
    private static long CopyBounded(ZipArchiveEntry entry, string target, long written, string fileName, long limit)
    {
        using var input = entry.Open();
        using var output = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
        var buffer = new byte[1 << 16];
        int n;
        while ((n = input.Read(buffer)) > 0)
        {
            written += n;
            if (written > limit)
                throw new UploadRejectedException($"'{fileName}' expands to more than {limit} bytes", StatusCodes.Status413PayloadTooLarge);
            output.Write(buffer, 0, n);
        }
        return written;
    }

    private static void ExtractTar(string file, string fileName, string root, UploadSettings limits)
    {
        Directory.CreateDirectory(root);
        using var stream = File.OpenRead(file);
        using var reader = new TarReader(stream);
        int count = 0;
        long expanded = 0;
        try
        {
            while (reader.GetNextEntry() is { } e)
            {
                if (++count > limits.MaxArchiveEntries)
                    throw new UploadRejectedException($"'{fileName}' has more than {limits.MaxArchiveEntries} entries");
                if (e.EntryType is TarEntryType.SymbolicLink or TarEntryType.HardLink)
                    throw new UploadRejectedException($"'{fileName}': entry '{e.Name}' is a link");
                string target = Target(root, e.Name, fileName);
                if (e.EntryType is TarEntryType.Directory) { Directory.CreateDirectory(target); continue; }
                if (e.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile))
                    throw new UploadRejectedException($"'{fileName}': entry '{e.Name}' is a {e.EntryType}, not a regular file");
                expanded += e.Length;
                if (expanded > limits.MaxExpandedBytes)
                    throw new UploadRejectedException($"'{fileName}' expands to more than {limits.MaxExpandedBytes} bytes", StatusCodes.Status413PayloadTooLarge);
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                e.ExtractToFile(target, overwrite: false);
            }
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException)
        {
            throw new UploadRejectedException($"'{fileName}' is not a valid tar archive: {e.Message}");
        }
    }
}
