#pragma once
// userfluxd: the orchestrator daemon of one runs root. It serves the control API (HTTP/JSON on loopback by
// default, a bearer token on every call), creates run directories through RunStore, launches one
// userflux-agent process per run and records what happens to it (status.json, logs.txt).
//
// Ownership and threading: a Daemon lives on the main thread, which must run an event loop; it owns its HTTP
// server, plugin host and agent processes. Nothing it does blocks for long: file writes are small, agents are
// watched through QProcess signals.
#include "userflux/httpserver.h"
#include "userflux/result.h"
#include "userflux/runstore.h"

#include <QElapsedTimer>
#include <QHostAddress>
#include <QObject>
#include <QProcess>
#include <QString>
#include <QStringList>

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>

class QLockFile;
class QTimer;

namespace Userflux {

class PluginHost;

struct DaemonOptions {
    QString runsRoot;                                   // absolute
    QHostAddress listen = QHostAddress(QHostAddress::LocalHost);
    QString listenText = QStringLiteral("127.0.0.1");   // as given, for messages
    bool allowRemote = false;
    quint16 port = 0;                                   // 0: any free port
    std::optional<std::chrono::milliseconds> idleExit;  // exit after this long without runs nor API calls
    QStringList pluginDirs;                             // searched by the daemon, forwarded to every agent
    QString agentProgram;                               // empty: userflux-agent beside the daemon executable

    bool showHelp = false;
    bool showVersion = false;
    QString helpText;
};

// Parses the command line (argv[0] first). Errors (code "usage") are meant for exit code 2.
Result<DaemonOptions> parseDaemonArguments(const QStringList &arguments);

class Daemon : public QObject {
    Q_OBJECT
public:
    explicit Daemon(DaemonOptions options, QObject *parent = nullptr);
    ~Daemon() override;

    // Takes the runs root (a lock file: one daemon per root), marks runs left behind by a previous daemon,
    // listens and publishes <runs root>/.userfluxd.json (mode 0600). Errors: "already_running" (another daemon
    // serves this root: exit 3), "listen", "io".
    Result<void> start();

    // Stops every agent gracefully (SIGTERM, then SIGKILL after its graceful_stop + 5 s), waits for them,
    // removes the endpoint file (if still ours) and emits finished(0). Idempotent.
    void shutdown(const QString &reason);

    quint16 port() const;
    QString token() const { return QString::fromLatin1(m_token); }
    int activeRuns() const;

Q_SIGNALS:
    void finished(int exitCode);

private:
    struct ActiveRun;

    void handle(const Http::Request &request, Http::Responder responder);
    void route(const Http::Request &request, Http::Responder &responder);
    void createRun(const Http::Request &request, Http::Responder responder);
    void getRuns(Http::Responder &responder);
    void getRun(const QString &runId, Http::Responder &responder);
    void getSummary(const QString &runId, Http::Responder &responder);
    void getTimeseries(const QString &runId, const Http::Request &request, Http::Responder &responder);
    void stopRun(const QString &runId, Http::Responder &responder);
    void getPlugins(Http::Responder &responder);

    void launchAgent(const QString &runId, std::chrono::milliseconds gracefulStop, Http::Responder responder);
    void onAgentStarted(const QString &runId);
    void onAgentFailedToStart(const QString &runId);
    void onAgentFinished(const QString &runId, int exitCode, QProcess::ExitStatus status);
    void drainAgentOutput(const QString &runId, QProcess::ProcessChannel channel, bool flushAll);
    void requestStop(const QString &runId, const QString &why);
    void checkOrphans();
    void reconcileLeftovers();
    void checkIdle();
    void maybeFinishShutdown();
    void finishShutdown();

    void log(const QString &runId, const QString &line);  // logs.txt of the run, "[daemon]"
    void say(const QString &line);                        // the daemon's own stderr
    bool authorized(const Http::Request &request) const;
    Result<void> writeEndpointFile();
    void removeEndpointFile();

    DaemonOptions m_options;
    RunStore m_store;
    std::unique_ptr<PluginHost> m_host;
    std::unique_ptr<Http::Server> m_server;
    std::unique_ptr<QLockFile> m_lock;
    QByteArray m_token;
    std::map<QString, std::unique_ptr<ActiveRun>> m_runs;
    std::map<QString, qint64> m_orphans;  // runs whose agent outlived a previous daemon: run id -> pid
    QTimer *m_idleTimer = nullptr;
    QTimer *m_orphanTimer = nullptr;
    QElapsedTimer m_lastActivity;
    bool m_started = false;
    bool m_shuttingDown = false;
    bool m_finished = false;
};

} // namespace Userflux
