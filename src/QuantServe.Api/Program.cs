using QuantServe.Api.Cli;
using QuantServe.Api.Hosting;

// Composition root. A subcommand (info, generate, …) runs the CLI; anything else starts the server, with the remaining
// arguments feeding ASP.NET Core configuration (--urls, --QuantServe:ModelsDirectory=…).
if (CliApp.IsSubcommand(args)) return await CliApp.RunAsync(args);

var builder = WebApplication.CreateBuilder(CliApp.ServerArgs(args));
builder.AddQuantServe();
var app = builder.Build();
app.UseQuantServe();
await app.RunAsync();
return 0;

/// <summary>The application entry point (public so integration tests can host it).</summary>
public partial class Program;
