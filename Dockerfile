# One image for the gateway and the operator:
#   /usr/local/bin/vmcp            (the entrypoint: vmcp serve --config ...)
#   /usr/local/bin/vmcp-operator   (config/manager runs it as the command)
#
#   docker build --build-arg VERSION=0.1.0 -t ghcr.io/vmcp-dev/vmcp:0.1.0 .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
ARG VERSION=0.1.0-dev
RUN CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath \
      -ldflags "-s -w -X github.com/vmcp-dev/vmcp/internal/app.Version=${VERSION}" \
      -o /out/ ./cmd/vmcp ./cmd/vmcp-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/vmcp /out/vmcp-operator /usr/local/bin/
USER 65532:65532
EXPOSE 4483
ENTRYPOINT ["/usr/local/bin/vmcp"]
