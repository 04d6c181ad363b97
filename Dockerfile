# jetmesh: one static binary on a small base with a shell (the Helm chart's admin-secret
# hook reads a file through it). Built by the release pipeline; not built in CI here (no
# container engine): deploy/ tests validate what uses it.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/jetmesh ./cmd/jetmesh

FROM alpine:3.22
RUN addgroup -S -g 65532 jetmesh && adduser -S -D -H -u 65532 -G jetmesh jetmesh && mkdir /data && chown 65532:65532 /data
COPY --from=build /out/jetmesh /usr/local/bin/jetmesh
USER 65532:65532
VOLUME /data
EXPOSE 4222 6222 8080
ENTRYPOINT ["jetmesh"]
CMD ["server", "--data=/data"]
