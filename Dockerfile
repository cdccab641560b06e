# cloudarchive in a container: for the Kubernetes manifests in deploy/kubernetes (backup-push --remote, dump-push,
# expire, metrics; drill with the `drill` target; the database's init container copies the binary out of it).
# Build: docker build -t cloudarchive . and docker build --target drill -t cloudarchive-drill .
#
# PG_MAJOR (default 15) is the PostgreSQL major of the client programs cloudarchive calls (pg_basebackup, pg_dump,
# pg_dumpall, pg_restore, psql) and of the drill's server: build with the major of your database's server,
#   docker build --build-arg PG_MAJOR=17 -t cloudarchive .
# since pg_basebackup and pg_dump refuse a server newer than themselves (cloudarchive says so: exit 9, naming the
# client to install), and the drill needs the server of its backups' major. The packages come from the PostgreSQL
# project's apt repository (apt.postgresql.org, every supported major for Debian 12); Debian 12's own archive has
# only 15.
#
# Stage 1 publishes the NativeAOT binary; stage 2 is Debian 12 with those client programs and nothing else.
ARG PG_MAJOR=15

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
ARG PG_MAJOR
# apt.postgresql.org's signing key comes with Debian's postgresql-common (its pgdg script writes the source line).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-common ca-certificates \
 && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
 && apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" libzstd1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin cloudarchive
COPY --from=build /out/cloudarchive /usr/local/bin/cloudarchive
ENV CLOUDARCHIVE_PG_BIN=/usr/lib/postgresql/${PG_MAJOR}/bin
ENTRYPOINT ["/usr/local/bin/cloudarchive"]
CMD ["--help"]

# The drill's image (docker build --target drill): the same plus the PostgreSQL server of PG_MAJOR (postgres, pg_ctl,
# pg_amcheck and the amcheck extension), without the cluster Debian's package would create.
FROM runtime AS drill
ARG PG_MAJOR
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends "postgresql-${PG_MAJOR}" \
 && rm -rf /var/lib/apt/lists/*
ENV CLOUDARCHIVE_DRILL_PG_BIN=/usr/lib/postgresql/${PG_MAJOR}/bin
USER 10001

FROM runtime
USER 10001
