#pragma once
// Userflux::Control::Client — the one control API that userfluxctl and the desktop app use to drive userfluxd.
//
// A daemon serves one runs root and publishes its endpoint in <runs root>/.userfluxd.json (mode 0600):
//   {"address": "127.0.0.1", "port": 41234, "token": "<64 hex>", "pid": 1234, "version": "0.1.0",
//    "runs_root": "/abs/runs"}
// Every call carries "Authorization: Bearer <token>" (else 401 {"error":"unauthorized"} and nothing more).
// Errors are {"error": code, "message": sentence}: 400 invalid_run_id / bad_request / invalid_data_file,
// 404 not_found, 405 method_not_allowed, 409 not_active, 503 shutting_down. The API (JSON, under /api/v1):
//   GET  /api/v1/health                       -> {status, version, runs_root, active_runs, pid}
//   POST /api/v1/runs {config, config_dir}    -> 201 {run_id, state ("running", or "failed" + message when the
//                                                agent could not start), run_dir, agent_pid}
//                                                400 {error:"invalid_config", errors:[{path, message}]}
//   GET  /api/v1/runs                         -> {runs: [{run_id, state, created_at, started_at, ended_at, name}]}
//   GET  /api/v1/runs/{id}                    -> {status: <status.json>, name, run_dir, has_summary,
//                                                 live: {elapsed_s, vus, rps, p95_ms, requests, ok, errors,
//                                                        error_rate}}
//   GET  /api/v1/runs/{id}/summary            -> <summary.json> (404 until the agent wrote one)
//   POST /api/v1/runs/{id}/stop               -> 202 {run_id, state: "stopping"}; 409 {error: "not_active"}
//   GET  /api/v1/runs/{id}/timeseries?since=T -> {buckets: [...]}
//   GET  /api/v1/plugins                      -> {plugins: [...], searched_dirs: [...]}
//
// Threading: a Client lives on the thread that created it (it owns a QNetworkAccessManager); every method must
// be called there and every task resumes there. Nothing blocks: calls are coroutines, each bounded by
// timeout(). Ownership: a plain QObject; destroying it while a call is pending aborts that call's reply.
#include "userflux/result.h"

#include <QByteArray>
#include <QObject>
#include <QString>
#include <QStringList>

#include <QCoroTask>

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>

class QNetworkAccessManager;

namespace Userflux::Control {

inline constexpr const char *EndpointFileName = ".userfluxd.json";
inline constexpr const char *DaemonLogFileName = ".userfluxd.log";

struct Endpoint {
    QString address;   // where to connect ("127.0.0.1", "::1", or the remote address the daemon listens on)
    quint16 port = 0;
    QString token;     // 64 hex characters
    qint64 pid = 0;
    QString version;
    QString runsRoot;  // the daemon's runs root (absolute)
};

// <runs root>/.userfluxd.json
QString endpointFilePath(const QString &runsRoot);
// Reads and checks an endpoint file. Errors: "no_daemon" (no file), "io", "json" (malformed or incomplete).
// Blocking (small file read); thread-safe.
Result<Endpoint> readEndpointFile(const QString &runsRoot);

class Client : public QObject {
    Q_OBJECT
public:
    // `runsRoot` should be absolute (RunStore::resolveRoot()).
    explicit Client(const QString &runsRoot, QObject *parent = nullptr);
    ~Client() override;

    QString runsRoot() const { return m_runsRoot; }

    // Every API call is aborted after this long (default 10 s).
    void setTimeout(std::chrono::milliseconds timeout) { m_timeout = timeout; }
    std::chrono::milliseconds timeout() const { return m_timeout; }

    // How ensureDaemon() starts a daemon. Defaults: <QCoreApplication::applicationDirPath()>/userfluxd,
    // idle exit 300 s, no extra plugin folders.
    void setDaemonProgram(const QString &path) { m_daemonProgram = path; }
    QString daemonProgram() const;
    void setDaemonIdleExit(const QString &duration) { m_idleExit = duration; }
    void setPluginDirs(const QStringList &dirs) { m_pluginDirs = dirs; }
    // How long ensureDaemon() waits for a daemon it started to answer (default 10 s).
    void setStartTimeout(std::chrono::milliseconds timeout) { m_startTimeout = timeout; }

    // Finds the daemon of the runs root through its endpoint file and checks that it answers (GET health with
    // the token, for this runs root). Errors: "no_daemon", "unreachable", "unauthorized", "timeout", ...
    QCoro::Task<Result<void>> connectToDaemon();
    // connectToDaemon(), and when no daemon answers: starts one detached (its stdout/stderr appended to
    // <runs root>/.userfluxd.log), emits daemonStarted() and waits (bounded) until it answers.
    // Errors: "daemon_start_failed" (with the reason, e.g. the last lines of its log).
    QCoro::Task<Result<void>> ensureDaemon();
    bool isConnected() const { return m_endpoint.port != 0; }
    const Endpoint &endpoint() const { return m_endpoint; }

    // The API calls (call connectToDaemon() or ensureDaemon() first). An HTTP error becomes an Error whose code
    // is the daemon's "error" field ("invalid_config", "invalid_run_id", "not_found", "not_active", ...) and
    // whose message is a sentence; for "invalid_config" the message holds one "<path>: <message>" line per
    // error (configErrorLines() splits it back). Transport problems: "unreachable", "timeout",
    // "unauthorized" (401: the endpoint file belongs to another daemon or is stale), "bad_response".
    QCoro::Task<Result<nlohmann::json>> health();
    // `configDir`: absolute folder that relative data files of the config are resolved against.
    QCoro::Task<Result<nlohmann::json>> createRun(const nlohmann::json &config, const QString &configDir);
    QCoro::Task<Result<nlohmann::json>> listRuns();
    QCoro::Task<Result<nlohmann::json>> getRun(const QString &runId);
    QCoro::Task<Result<nlohmann::json>> runSummary(const QString &runId);
    QCoro::Task<Result<nlohmann::json>> stopRun(const QString &runId);
    QCoro::Task<Result<nlohmann::json>> timeseries(const QString &runId, double sinceS = 0);
    QCoro::Task<Result<nlohmann::json>> plugins();

    // The low-level call under all of the above: `body` is sent as JSON when not null. Returns the parsed JSON
    // of a 2xx answer.
    QCoro::Task<Result<nlohmann::json>> call(QByteArray verb, QString path, nlohmann::json body = nullptr);

    // Splits an "invalid_config" error message back into "<path>: <message>" lines.
    static QStringList configErrorLines(const Error &error);

Q_SIGNALS:
    // ensureDaemon() started a daemon: "started userfluxd (pid N) for runs root X".
    void daemonStarted(qint64 pid, const QString &runsRoot, const QString &message);

private:
    QCoro::Task<Result<void>> probe(Endpoint endpoint);

    QString m_runsRoot;
    QString m_daemonProgram;
    QString m_idleExit = QStringLiteral("300s");
    QStringList m_pluginDirs;
    std::chrono::milliseconds m_timeout{10000};
    std::chrono::milliseconds m_startTimeout{10000};
    Endpoint m_endpoint;
    QNetworkAccessManager *m_nam = nullptr;
};

} // namespace Userflux::Control
