# Build with the official Swift image, run on slim Debian with only the runtime libraries.
FROM swift:6.0-bookworm AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopenblas-dev libsqlite3-dev libjpeg-dev libpng-dev zlib1g-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product dsch --static-swift-stdlib \
    && mkdir -p /out \
    && cp .build/release/dsch /out/ \
    && cp -R .build/release/*.resources /out/

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopenblas0-pthread libsqlite3-0 libjpeg62-turbo libpng16-16 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /srv/dsch dsch
COPY --from=build /out/ /usr/local/bin/
WORKDIR /srv/dsch
USER dsch
VOLUME /srv/dsch/data
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dsch"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--database", "data/dsch.sqlite"]
