# cloudarchive in a container: for the Kubernetes CronJobs in deploy/kubernetes (backup-push --remote,
# dump-push; drill with the `drill` target). Build: docker build -t cloudarchive . and
# docker build --target drill -t cloudarchive-drill .
# Stage 1 publishes the NativeAOT binary; stage 2 is Debian 12 with the PostgreSQL 15 client programs
# cloudarchive calls (pg_basebackup, pg_dump, pg_dumpall, pg_restore, psql) and nothing else.
FROM mcr.microsoft.com/dotnet/sdk:10.0-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props ./
COPY src/ src/
RUN dotnet publish src/CloudArchive.Cli -c Release -o /out \
 && rm -f /out/*.dbg /out/*.pdb

FROM debian:12-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 libzstd1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin cloudarchive
COPY --from=build /out/cloudarchive /usr/local/bin/cloudarchive
ENV CLOUDARCHIVE_PG_BIN=/usr/lib/postgresql/15/bin
ENTRYPOINT ["/usr/local/bin/cloudarchive"]
CMD ["--help"]

# The drill's image (docker build --target drill): the same plus the PostgreSQL 15 server (postgres, pg_ctl,
# pg_amcheck and the amcheck extension), without the cluster Debian's package would create.
FROM runtime AS drill
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/*
ENV CLOUDARCHIVE_DRILL_PG_BIN=/usr/lib/postgresql/15/bin
USER 10001

FROM runtime
USER 10001
