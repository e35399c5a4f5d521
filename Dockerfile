# syntax=docker/dockerfile:1
# Build: SDK image compiles and publishes the server (framework-dependent; the runtime image supplies .NET).
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY Directory.Build.props QuantServe.sln ./
COPY src/QuantServe.Engine/QuantServe.Engine.csproj src/QuantServe.Engine/
COPY src/QuantServe.Api/QuantServe.Api.csproj src/QuantServe.Api/
RUN dotnet restore src/QuantServe.Api/QuantServe.Api.csproj
COPY src/ src/
COPY models/ models/
RUN dotnet publish src/QuantServe.Api/QuantServe.Api.csproj -c Release --no-restore -o /app

# Run: slim ASP.NET runtime, non-root user, models and data as volumes.
FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app ./
RUN mkdir -p /models /data && chown -R app:app /models /data
USER app
ENV ASPNETCORE_URLS=http://0.0.0.0:8080 \
    QuantServe__ModelsDirectory=/models \
    QuantServe__DataDirectory=/data
VOLUME ["/models", "/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["/app/quantserve", "healthcheck", "--url", "http://127.0.0.1:8080/health/ready"]
ENTRYPOINT ["/app/quantserve"]
CMD ["serve"]
