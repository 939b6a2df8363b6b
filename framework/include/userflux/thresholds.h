#pragma once
// Thresholds: pass/fail criteria on the final merged results, in the grammar of the run contract:
//   "thresholds": { "latency_ms": ["p95 < 500"], "latency_ms{endpoint=login}": ["p99 < 800"],
//                   "error_rate": ["< 0.01"], "throughput_rps": ["> 100"], "checks": ["rate > 0.99"],
//                   "server_timing_ms{service=orders}": [{"expr": "p95 < 80", "abort_on_fail": true}] }
#include "userflux/plugin.h"

#include <QString>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <vector>

namespace Userflux {

struct Threshold {
    QString metric;      // the key as written: "latency_ms{endpoint=login}"
    QString metricName;  // "latency_ms"
    QString scopeKey;    // "endpoint" (empty when unscoped)
    QString scopeValue;  // "login"
    QString expr;        // "p95 < 500"
    QString stat;        // "p95", "max", "mean", "rate", "value" (implicit), ...
    QString op;          // "<", "<=", ">", ">=", "==", "!="
    double bound = 0;
    bool abortOnFail = false;
    std::chrono::microseconds delay{0};
};

// Parses and checks the "thresholds" object; problems are appended to `errors` with their paths.
std::vector<Threshold> parseThresholds(const nlohmann::json &thresholds, ConfigErrors *errors);

struct ThresholdResult {
    bool ok = false;
    std::optional<double> observed; // absent when the metric had no data (then ok is false)
};

// Evaluates one threshold against a summary (the run contract's summary.json shape). Pure.
ThresholdResult evaluateThreshold(const Threshold &threshold, const nlohmann::json &summary);

} // namespace Userflux
