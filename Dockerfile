# mailwave: one image with the worker, the starter and the codec server; the default command is the worker,
# `--entrypoint /usr/local/bin/starter` runs the starter.
#
# Written for the classic builder as well as BuildKit (docker-compose 1.29
# may use either), so no RUN --mount caches.

FROM golang:1.26 AS build
WORKDIR /src

# Dependencies first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download

# The Go source only: never the context's deploy/ (TLS keys, secrets),
# data/ or .env (.dockerignore names them too).
COPY activities ./activities
COPY codec ./codec
COPY codecserver ./codecserver
COPY contract ./contract
COPY identity ./identity
COPY internal ./internal
COPY mail ./mail
COPY plan ./plan
COPY roster ./roster
COPY starter ./starter
COPY worker ./worker
COPY workflows ./workflows
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/bin/ ./worker ./starter ./codecserver \
 && mkdir -p /out/data/outbox /out/data/estate

# distroless/static: no shell or package manager, CA certificates and tzdata
# included, runs as the unprivileged user nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bin/ /usr/local/bin/
# /data is owned by nonroot, so a named volume mounted there starts writable.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
ENV MAILWAVE_OUTBOX_DIR=/data/outbox \
    MAILWAVE_SIM_DIR=/data/estate
VOLUME ["/data"]
CMD ["/usr/local/bin/worker"]
