import Foundation
import HTTP

/// Counters, gauges and a latency histogram, rendered in the Prometheus text format. Thread-safe.
public final class Metrics: @unchecked Sendable {
    /// Upper bounds (seconds) of the latency histogram buckets.
    static let latencyBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    private struct RequestKey: Hashable { let route: String; let method: String; let status: Int }
    private struct Histogram { var counts: [Int]; var sum = 0.0; var count = 0 }

    private let lock = NSLock()
    private var requests: [RequestKey: Int] = [:]
    private var latency: [String: Histogram] = [:]
    private var counters: [String: Double] = [:]

    public init() {}

    /// Records one finished HTTP request. `route` must come from a fixed set (route patterns or
    /// "unmatched"); `method` is folded into `other` when unknown, so junk methods a client invents
    /// cannot grow the label set (and memory) without bound.
    public func observeRequest(route: String, method: String, status: Int, seconds: Double) {
        let methodLabel = MetricsLabel.method(method)
        lock.lock()
        defer { lock.unlock() }
        requests[RequestKey(route: route, method: methodLabel, status: status), default: 0] += 1
        var histogram = latency[route] ?? Histogram(counts: Array(repeating: 0, count: Metrics.latencyBuckets.count))
        for (index, bound) in Metrics.latencyBuckets.enumerated() where seconds <= bound { histogram.counts[index] += 1 }
        histogram.sum += seconds
        histogram.count += 1
        latency[route] = histogram
    }

    /// Adds to a named counter (`name{labels}` as one string key).
    public func increment(_ series: String, by amount: Double = 1) {
        lock.lock()
        counters[series, default: 0] += amount
        lock.unlock()
    }

    /// The exposition text; `gauges` are sampled by the caller at scrape time.
    public func render(gauges: [(name: String, help: String, value: Double)]) -> String {
        lock.lock()
        defer { lock.unlock() }
        var text = "# HELP dsch_http_requests_total HTTP requests by route, method and status.\n# TYPE dsch_http_requests_total counter\n"
        for (key, count) in requests.sorted(by: { ($0.key.route, $0.key.method, $0.key.status) < ($1.key.route, $1.key.method, $1.key.status) }) {
            text += "dsch_http_requests_total{route=\"\(key.route)\",method=\"\(key.method)\",status=\"\(key.status)\"} \(count)\n"
        }
        text += "# HELP dsch_http_request_duration_seconds Request latency by route.\n# TYPE dsch_http_request_duration_seconds histogram\n"
        for (route, histogram) in latency.sorted(by: { $0.key < $1.key }) {
            for (index, bound) in Metrics.latencyBuckets.enumerated() {
                text += "dsch_http_request_duration_seconds_bucket{route=\"\(route)\",le=\"\(bound)\"} \(histogram.counts[index])\n"
            }
            text += "dsch_http_request_duration_seconds_bucket{route=\"\(route)\",le=\"+Inf\"} \(histogram.count)\n"
            text += "dsch_http_request_duration_seconds_sum{route=\"\(route)\"} \(histogram.sum)\n"
            text += "dsch_http_request_duration_seconds_count{route=\"\(route)\"} \(histogram.count)\n"
        }
        var described = Set<String>()
        for (series, value) in counters.sorted(by: { $0.key < $1.key }) {
            let name = String(series.prefix { $0 != "{" })
            if described.insert(name).inserted { text += "# TYPE \(name) counter\n" }
            text += "\(series) \(Metrics.format(value))\n"
        }
        for gauge in gauges {
            let name = String(gauge.name.prefix { $0 != "{" })
            if described.insert(name).inserted { text += "# HELP \(name) \(gauge.help)\n# TYPE \(name) gauge\n" }
            text += "\(gauge.name) \(Metrics.format(gauge.value))\n"
        }
        return text
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
