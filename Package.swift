// swift-tools-version:6.0
import PackageDescription

/// dsch: a self-hosted image similarity search service with learned binary hash codes.
/// One target per concern; lower targets never import higher ones (see the table in the README).
let package = Package(
    name: "dsch",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "dsch", targets: ["dsch"]),
        .library(name: "HTTP", targets: ["HTTP"]),
        .library(name: "HammingIndex", targets: ["HammingIndex"]),
    ],
    targets: [
        // C libraries from Debian, reached through module maps and shim headers.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPostgres", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),

        .target(name: "Imaging", dependencies: ["CJPEG", "CPNG"]),
        .target(name: "NeuralNet", dependencies: ["CBLAS"]),
        // Encoders (LSH, ITQ, DSCH), the DSCH trainer, clustering, losses and the linear algebra they share.
        .target(name: "Hashing", dependencies: ["NeuralNet", "CBLAS"]),
        // The retrieval evaluation: the Fashion-MNIST protocol, IDX files, metrics and the PR plot.
        .target(name: "Evaluation", dependencies: ["Hashing", "HammingIndex", "Imaging", "CZlib"]),
        // Hamming-distance kernels per instruction set (POPCNT, AVX2, AVX-512), chosen at start-up.
        .target(name: "CHammingKernels"),
        .target(name: "HammingIndex", dependencies: ["CHammingKernels"]),
        .target(name: "Storage", dependencies: ["CSQLite", "CPostgres"],
                resources: [.copy("Migrations"), .copy("PostgresMigrations")]),
        // epoll behind plain C calls for the HTTP server's event loops.
        .target(name: "CEventPoll"),
        .target(name: "HTTP", dependencies: ["CEventPoll"]),
        .target(
            name: "Service",
            dependencies: ["Imaging", "Hashing", "Evaluation", "HammingIndex", "Storage", "HTTP"]
        ),
        .executableTarget(
            name: "dsch",
            dependencies: ["Service", "HTTP", "Hashing", "Evaluation", "Imaging", "NeuralNet", "HammingIndex"]
        ),

        // Shared by the test targets: the socket test client, test images, one RNG, one CRC, helpers.
        .target(name: "TestSupport", dependencies: ["Imaging"], path: "Tests/TestSupport"),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "CJPEG", "CPNG", "TestSupport"]),
        .testTarget(name: "NeuralNetTests", dependencies: ["NeuralNet"]),
        .testTarget(name: "HashingTests", dependencies: ["Hashing", "NeuralNet"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Hashing", "HammingIndex", "Imaging", "NeuralNet", "CZlib"]),
        .testTarget(name: "HammingIndexTests", dependencies: ["HammingIndex"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "TestSupport"]),
        .testTarget(name: "HTTPTests", dependencies: ["HTTP", "TestSupport"]),
        .testTarget(name: "ServiceTests", dependencies: ["Service", "HTTP", "Imaging", "Storage", "Hashing", "HammingIndex", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
