# Dockerfile: mutirao on Debian 12 (the `mutirao` command, mutirao-worker,
# goroutine.so, libmutirao), for compose.yaml's workers and producers.
FROM debian:12-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config ca-certificates lua5.4 liblua5.4-dev libuv1-dev \
      libmsgpack-dev libhiredis-dev librdkafka-dev libcurl4-openssl-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
    && cmake --build /build -j"$(nproc)" --target mutirao mutirao-worker goroutine_module

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates lua5.4 liblua5.4-0 libuv1 libmsgpackc2 libhiredis0.14 librdkafka1 \
      libcurl4 libssl3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/bin/mutirao /build/bin/mutirao-worker /usr/local/bin/
COPY --from=build /build/lib/goroutine.so /usr/local/lib/lua/5.4/
COPY examples /examples
ENTRYPOINT ["mutirao-worker"]
