#pragma once
// The plugin SDK: the three kinds of plugin the core loads as shared libraries (protocol, scenario, sink).
//
// A plugin is a QObject subclass declaring Q_PLUGIN_METADATA(IID <kind iid> FILE "<id>.json") and
// Q_INTERFACES(<interface>). The metadata JSON must hold {"id", "kind", "version", "api_version", "description"};
// the host reads it *before* loading the library and refuses a plugin whose IID or api_version does not match
// PluginApiVersion, naming the plugin and the reason.
//
// Threading: plugin objects are created on the host's (control) thread. validate() and create*() are called
// there. Objects they create document their own threading below.
#include "userflux/result.h"

#include <QByteArray>
#include <QList>
#include <QObject>
#include <QPair>
#include <QString>
#include <QUrl>
#include <QtPlugin>

#include <QCoroTask>

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

namespace Userflux {

// Major version of this SDK. Bumped on any incompatible change; also part of every IID below.
inline constexpr int PluginApiVersion = 1;

// One config problem: where (a JSON-path-like location, e.g. "scenario.steps[1].method") and why.
struct ConfigError {
    QString path;
    QString message;
    bool operator==(const ConfigError &) const = default;
};
using ConfigErrors = QList<ConfigError>;

using HttpHeaders = QList<QPair<QByteArray, QByteArray>>;
// Case-insensitive header lookup; returns an empty array when absent.
QByteArray headerValue(const HttpHeaders &headers, const QByteArray &name);

// How a request ended. One name per kind in the run contract (errors_by_kind).
enum class ErrorKind {
    None,           // a response arrived (its status may still make it an http_status error: the core decides)
    HttpStatus,     // set by the core only: a response whose status was not expected
    Timeout,        // no complete response within the request's deadline
    ConnectRefused, // the target refused the connection
    ConnectTimeout, // no TCP connection within the deadline
    Reset,          // the connection was reset or closed before the response was complete
    Tls,            // TLS handshake or certificate failure
    Dns,            // the host name did not resolve
    Protocol,       // the server sent something that is not valid HTTP (or h2c to an HTTP/1.1-only server)
    Interrupted,    // cancelled by the run (end of graceful stop, abort): neither ok nor error
    Other,          // any other transport failure (message says which)
};
QString errorKindName(ErrorKind kind); // "timeout", "connect_refused", ... ; "" for None

using MonoClock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------------------------
// Protocol plugins: execute one request, asynchronously, on the worker thread that owns the client.
struct ProtocolRequest {
    QByteArray method;
    QUrl url;
    HttpHeaders headers;
    QByteArray body;
    std::chrono::milliseconds timeout{10000}; // whole-request deadline, enforced by the engine
    quint64 affinity = 0;                     // the vUser id: requests of one vUser share its connections
    bool wantBody = false;                    // false: the engine may drop the body after counting its bytes
    bool wantHeaders = true;                  // false: the engine need not copy response headers
};

struct ProtocolResponse {
    int status = 0;                      // HTTP status, 0 when no response arrived
    ErrorKind error = ErrorKind::None;   // transport outcome (never HttpStatus)
    QString errorMessage;                // set when error != None
    HttpHeaders headers;                 // when wantHeaders
    QByteArray body;                     // when wantBody
    qint64 bytesReceived = 0;            // response body bytes received
    qint64 bytesSent = 0;                // request body bytes sent
    MonoClock::time_point start;         // when the engine took the request
    MonoClock::time_point firstByte;     // response headers seen (== start when none)
    MonoClock::time_point end;           // completion, failure or cancellation
    QByteArray protocol;                 // "http/1.1", "h2" (empty when no response)
};

// A client bound to one worker thread (the thread that called IProtocolPlugin::createClient). Not thread-safe:
// every call must come from that thread, and callbacks run on it.
class IProtocolClient {
public:
    using Callback = std::function<void(ProtocolResponse &&)>;
    virtual ~IProtocolClient() = default;
    // Starts a request and returns a handle for cancel(). `done` is called exactly once, asynchronously (never
    // from inside send()), on this thread. The engine enforces request.timeout itself.
    virtual quint64 send(ProtocolRequest request, Callback done) = 0;
    // Cancels a request in flight: its callback is called (asynchronously) with ErrorKind::Interrupted. A handle
    // that already completed is ignored.
    virtual void cancel(quint64 handle) = 0;
    // Number of retries the engine made on its own (stale keep-alive connection re-sends), for totals.retries.
    virtual qint64 retries() const { return 0; }
};

struct ProtocolOptions {
    nlohmann::json config;   // the whole validated config (target + protocol sections are what matter)
};

class IProtocolPlugin {
public:
    virtual ~IProtocolPlugin() = default;
    // Validates the "protocol" object beyond its "plugin" key and what this engine can do of "target"
    // (e.g. an http_version it does not support). Pure; returns every problem.
    virtual ConfigErrors validate(const nlohmann::json &config) const = 0;
    // Creates a client bound to the calling thread (a worker thread with a running event loop).
    virtual std::unique_ptr<IProtocolClient> createClient(const ProtocolOptions &options) = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// Scenario plugins: what each vUser does per iteration. The core provides an IVuContext per vUser.
struct StepRequest {
    QString step;            // step (endpoint) name: metrics are grouped by it
    QByteArray method;
    QString path;            // a path ("/api/items?x=1") resolved against target.base_url, or an absolute URL
    HttpHeaders headers;     // added to target.headers (same name replaces)
    QByteArray body;
    bool wantBody = false;   // the scenario needs the body (checks, extraction)
    QList<int> expectStatus; // statuses counted as ok; empty: 200..399
};

struct StepResponse {
    int status = 0;
    ErrorKind error = ErrorKind::None;  // HttpStatus when the status was not expected
    QString errorMessage;
    HttpHeaders headers;
    QByteArray body;                    // when wantBody
    std::chrono::microseconds latency{0};
    bool interrupted() const { return error == ErrorKind::Interrupted; }
};

// One vUser's view of the run. Lives on the vUser's worker thread; not thread-safe.
class IVuContext {
public:
    virtual ~IVuContext() = default;
    virtual int vu() const = 0;            // 1-based vUser id, unique in the run
    virtual qint64 iteration() const = 0;  // 0-based index of the current iteration of this vUser
    // Sends the request (following redirects when the config asks, each hop its own recorded request), records
    // its metrics and returns the final response. Resumes on the same thread.
    virtual QCoro::Task<StepResponse> request(StepRequest request) = 0;
    // Think time: waits `duration`, or less when the vUser is told to stop.
    virtual QCoro::Task<> sleep(std::chrono::microseconds duration) = 0;
    // True once this vUser must stop as soon as possible (run ending, ramp-down past graceful stop).
    virtual bool stopping() const = 0;
    // Records one check outcome for the summary (a failed check does not make the request an error).
    virtual void recordCheck(const QString &step, const QString &check, bool passed) = 0;
    // A line for the run's logs.txt (rate-limited by the core).
    virtual void log(const QString &line) = 0;
    // This vUser's random generator (seeded per vUser).
    virtual quint64 random() = 0;
};

// Per-vUser script state (extracted variables, data row). Created and used on the vUser's worker thread.
class IVuScript {
public:
    virtual ~IVuScript() = default;
    // Runs one iteration. Must return promptly once ctx.stopping() is true or a request comes back interrupted.
    // Returns true when the iteration ran to its end (only those count in totals.iterations).
    virtual QCoro::Task<bool> iteration(IVuContext &ctx) = 0;
};

// A compiled scenario, shared by every worker: createVu() may be called from several worker threads at once.
class IScenario {
public:
    virtual ~IScenario() = default;
    virtual std::unique_ptr<IVuScript> createVu(int vu) = 0;
    // Endpoint names in declaration order (for the summary's endpoints table, even when one saw no request).
    virtual QStringList endpoints() const = 0;
};

struct ScenarioOptions {
    nlohmann::json config;  // the whole validated config
    QString baseDir;        // folder that relative data files are resolved against (the run dir)
};

class IScenarioPlugin {
public:
    virtual ~IScenarioPlugin() = default;
    // Validates the "scenario" object. `baseDir` is where relative data files are looked up (may be empty:
    // then file existence is not checked). Returns every problem, paths starting with "scenario".
    virtual ConfigErrors validate(const nlohmann::json &scenario, const QString &baseDir) const = 0;
    // Data files the scenario reads (relative as written in the config): copied into the run dir at start.
    virtual QStringList dataFiles(const nlohmann::json &scenario) const = 0;
    // The endpoint names a (valid) scenario section declares, so that thresholds scoped to an endpoint can be
    // checked before the run.
    virtual QStringList endpoints(const nlohmann::json &scenario) const = 0;
    virtual Result<std::shared_ptr<IScenario>> create(const ScenarioOptions &options) = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// Sink plugins: receive the run's results on the agent's control thread, in order: open, then any number of
// samples()/timeseries()/summary() calls, then close(). Batching is the core's job.
struct Sample {
    double tS = 0;            // completion time, seconds since run start
    int vu = 0;
    qint64 iter = 0;
    QString step;
    QByteArray method;
    QString url;
    int status = 0;
    double latencyMs = 0;
    double ttfbMs = 0;
    qint64 bytesReceived = 0;
    QByteArray proto;
    ErrorKind outcome = ErrorKind::None;  // None: ok
    QString error;
};

struct SinkContext {
    QString runId;
    QString runDir;
    nlohmann::json config;      // the whole validated config
    nlohmann::json sinkConfig;  // this sink's entry of "sinks"
};

class ISink {
public:
    virtual ~ISink() = default;
    virtual Result<void> open(const SinkContext &context) = 0;
    virtual bool wantsSamples() const = 0;
    virtual void samples(const std::vector<Sample> &batch) = 0;
    // One finished time-series bucket (shape of a summary.timeseries entry), once per second.
    virtual void timeseries(const nlohmann::json &bucket) = 0;
    // The summary: partial (final == false, every few seconds) or final (once, last).
    virtual void summary(const nlohmann::json &summary, bool final) = 0;
    // Flushes and releases everything; results must be complete on disk when it returns.
    virtual Result<void> close() = 0;
};

class ISinkPlugin {
public:
    virtual ~ISinkPlugin() = default;
    // Validates one entry of "sinks" (path is e.g. "sinks[0]"). Returns every problem.
    virtual ConfigErrors validate(const nlohmann::json &sink, const QString &path) const = 0;
    virtual std::unique_ptr<ISink> create() = 0;
};

} // namespace Userflux

#define UserfluxProtocolPlugin_iid "io.userflux.ProtocolPlugin/1"
#define UserfluxScenarioPlugin_iid "io.userflux.ScenarioPlugin/1"
#define UserfluxSinkPlugin_iid "io.userflux.SinkPlugin/1"
Q_DECLARE_INTERFACE(Userflux::IProtocolPlugin, UserfluxProtocolPlugin_iid)
Q_DECLARE_INTERFACE(Userflux::IScenarioPlugin, UserfluxScenarioPlugin_iid)
Q_DECLARE_INTERFACE(Userflux::ISinkPlugin, UserfluxSinkPlugin_iid)
