# Dockerfile — two stages on Debian 12: build ticketd with the -dev packages, then
# ship the binary on a slim image with only the runtime libraries.

FROM debian:12 AS builder
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkgconf libh2o-evloop-dev libh2o-dev libhiredis-dev \
      libpq-dev libmsgpack-dev libjansson-dev libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build build -j"$(nproc)"

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libh2o-evloop0.13 libhiredis0.14 libpq5 libmsgpackc2 libjansson4 libssl3 \
      zlib1g ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin ticketd
COPY --from=builder /src/build/ticketd /usr/local/bin/ticketd
USER ticketd
ENV TICKETD_ENV=production TICKETD_LISTEN=0.0.0.0:8000
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/ticketd"]
