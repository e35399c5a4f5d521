using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Quantization.Calibration;

public class CalibrationSetTests
{
    private static readonly string Bible = SharedAssets.Path("eval", "bible.txt");

    [Fact]
    public void Load_BibleWithProseTokenizer_WindowsStartWithBosAndAreSpreadEvenlyOverTheText()
    {
        using var model = ModelLoader.Load(SharedAssets.Prose15m);
        var set = CalibrationSet.Load(Bible, model.Tokenizer, model.Config.ContextLength, samples: 4, sequenceLength: 64);
        Assert.Equal(4, set.Samples);
        Assert.Equal(64, set.SequenceLength);
        var text = model.Tokenizer.Encode(File.ReadAllText(Bible), addBos: false);
        int available = text.Length / 63;
        for (int s = 0; s < 4; s++)
        {
            int slot = s * available / 4;
            Assert.Equal(64, set.Windows[s].Length);
            Assert.Equal(model.Tokenizer.BosId, set.Windows[s][0]);
            Assert.Equal(text.Skip(slot * 63).Take(63), set.Windows[s].Skip(1));
        }
    }

    [Fact]
    public void Load_SequenceLongerThanContext_IsCappedAtContext()
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        var set = CalibrationSet.Load(Bible, model.Tokenizer, contextLength: 100, samples: 2, sequenceLength: 4096);
        Assert.Equal(100, set.SequenceLength);
        Assert.All(set.Windows, w => Assert.Equal(100, w.Length));
    }

    [Fact]
    public void Load_Jsonl_JoinsTheTextFieldsWithNewlines()
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        using var dir = new TempModelFolder();
        string path = dir.Path("calib.jsonl");
        File.WriteAllText(path, "{\"text\": \"Once upon a time\"}\n\n{\"text\": \"there was a cat.\", \"id\": 3}\n");
        var set = CalibrationSet.Load(path, model.Tokenizer, 512, samples: 1, sequenceLength: 6);
        var expected = model.Tokenizer.Encode("Once upon a time\nthere was a cat.", addBos: false).Take(5);
        Assert.Equal(expected, set.Windows[0].Skip(1));
    }

    [Fact]
    public void Load_JsonlLineWithoutText_NamesFileAndLine()
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        using var dir = new TempModelFolder();
        string path = dir.Path("bad.jsonl");
        File.WriteAllText(path, "{\"text\": \"fine\"}\n{\"content\": \"no text\"}\n");
        var e = Assert.Throws<ModelLoadException>(() => CalibrationSet.Load(path, model.Tokenizer, 512));
        Assert.Equal(path, e.File);
        Assert.Contains("line 2", e.Problem);
    }

    [Fact]
    public void Load_TextShorterThanOneWindow_Throws()
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        using var dir = new TempModelFolder();
        string path = dir.Path("short.txt");
        File.WriteAllText(path, "Hello.");
        var e = Assert.Throws<ModelLoadException>(() => CalibrationSet.Load(path, model.Tokenizer, 512, 4, 128));
        Assert.Contains("fewer than one window", e.Problem);
    }

    [Fact]
    public void Load_MissingFile_ThrowsModelLoadException()
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        Assert.Throws<ModelLoadException>(() => CalibrationSet.Load("/nonexistent/calib.txt", model.Tokenizer, 512));
    }
}
