# syntax=docker/dockerfile:1
# Multi-stage build: a static binary (pure Go, no cgo) in a distroless image,
# running as an unprivileged user. Both images are pinned: Go by its release,
# distroless (which has no version tags) by digest; update them on purpose.
FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
# The Go client module, which go.mod replaces with ./client.
COPY client/go.mod client/go.sum ./client/
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/useremail ./cmd/useremail \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
COPY --from=build /out/useremail /usr/local/bin/useremail
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
ENV USEREMAIL_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/useremail"]
CMD ["serve"]
