#pragma once
// Mergeable run statistics. Each worker records into its own RunStats (no lock on the per-request path); the
// control thread merges the workers' per-second deltas into the run's totals and time series.
#include "userflux/histogram.h"
#include "userflux/plugin.h"

#include <QByteArray>
#include <QString>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>

namespace Userflux {

struct EndpointStats {
    QByteArray method;
    qint64 requests = 0, ok = 0, errors = 0, interrupted = 0;
    std::unique_ptr<Histogram> latency; // allocated on first finished request

    void merge(const EndpointStats &other);
};

struct CheckStats {
    qint64 passes = 0, fails = 0;
};

struct RunStats {
    qint64 requests = 0, ok = 0, errors = 0, interrupted = 0;
    qint64 iterations = 0;
    qint64 droppedIterations = 0;   // open model: due when every vUser of the pool was busy
    qint64 bytesReceived = 0, bytesSent = 0;
    Histogram latency;    // ok + errors
    Histogram latencyOk;  // ok only
    std::unique_ptr<Histogram> latencyCorrected; // open model: from the intended start, coordinated omission corrected
    std::map<int, qint64> statusCodes;
    std::map<QString, qint64> errorsByKind;      // by errorKindName()
    std::map<QString, EndpointStats> endpoints;  // by step name
    std::map<QString, std::unique_ptr<Histogram>> serverTiming; // by Server-Timing metric name, in µs
    std::map<std::pair<QString, QString>, CheckStats> checks;   // (step, check)
    std::map<QByteArray, qint64> protocols;

    RunStats() = default;
    RunStats(RunStats &&) = default;
    RunStats &operator=(RunStats &&) = default;

    bool isEmpty() const { return requests == 0 && iterations == 0 && checks.empty(); }

    // Records one finished, failed or interrupted request. `error` is the final outcome (HttpStatus included).
    void recordRequest(const QString &step, const QByteArray &method, int status, ErrorKind error,
                       qint64 latencyUs, qint64 bytesReceived, qint64 bytesSent, const QByteArray &protocol);
    void recordServerTiming(const QString &metric, qint64 durUs);
    // Open model: a latency measured from the iteration's intended start, corrected for coordinated omission the
    // way HdrHistogram's recordValueWithExpectedInterval (and wrk2) does: a value longer than the interval at
    // which this vUser was expected to start iterations also records the samples that the stall kept from being
    // sent (value - interval, value - 2*interval, ...).
    void recordCorrected(qint64 latencyUs, qint64 expectedIntervalUs);
    void recordCheck(const QString &step, const QString &check, bool passed);

    void merge(const RunStats &other);
};

// The summary's latency block in milliseconds ({"count": 0} when empty).
nlohmann::json latencyBlock(const Histogram &h);

// Parses a Server-Timing header value ("auth;dur=3.2, db;desc=\"x\";dur=12") into (name, µs) pairs; entries
// without a numeric dur are skipped.
std::vector<std::pair<QString, qint64>> parseServerTiming(const QByteArray &value);

} // namespace Userflux
