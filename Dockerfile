# Multi-stage build: a static-ish release binary on a small non-root runtime image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin medway

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/medway --create-home medway
COPY --from=build /src/target/release/medway /usr/local/bin/medway
COPY channels /etc/medway/channels
WORKDIR /var/lib/medway
USER medway
VOLUME /var/lib/medway
EXPOSE 2575
ENV MEDWAY_STORE_URL=sqlite:///var/lib/medway/medway.db
ENTRYPOINT ["/usr/local/bin/medway"]
CMD ["run", "--channels", "/etc/medway/channels"]
