#include "daemon.h"

#include "userflux/config.h"
#include "userflux/controlclient.h"
#include "userflux/duration.h"
#include "userflux/pluginhost.h"
#include "userflux/runid.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QLockFile>
#include <QPointer>
#include <QRandomGenerator>
#include <QTimer>
#include <QUrl>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace Userflux {

using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr qint64 MaxLineBytes = 64 * 1024;      // a longer partial agent line is logged as it is
constexpr auto KillGrace = 5s;                   // after graceful_stop, before SIGKILL
constexpr auto ShutdownExtra = 10s;              // shutdown waits at most max(graceful_stop) + this

QByteArray dump(const json &value)
{
    return QByteArray::fromStdString(value.dump());
}

void sendJson(Http::Responder &responder, int status, const json &body, const Http::Headers &extra = {})
{
    responder.sendJson(status, dump(body), extra);
}

void sendError(Http::Responder &responder, int status, const QString &code, const QString &message)
{
    sendJson(responder, status, json{{"error", code.toStdString()}, {"message", message.toStdString()}});
}

QString str(const json &obj, const char *key)
{
    if (!obj.is_object())
        return {};
    const auto it = obj.find(key);
    return it != obj.end() && it->is_string() ? QString::fromStdString(it->get<std::string>()) : QString();
}

bool processAlive(qint64 pid)
{
    return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

// True when `pid` is an agent working on `runDir` (guards against a recycled pid before we signal it).
bool isAgentOf(qint64 pid, const QString &runDir)
{
    QFile f(QStringLiteral("/proc/%1/cmdline").arg(pid));
    if (!f.open(QIODevice::ReadOnly))
        return false;
    const QList<QByteArray> args = f.readAll().split('\0');
    for (qsizetype i = 0; i + 1 < args.size(); ++i) {
        if (args[i] == "--run-dir" && QDir::cleanPath(QFile::decodeName(args[i + 1])) == QDir::cleanPath(runDir))
            return true;
    }
    return false;
}

// Constant-time comparison: the time taken does not depend on where the tokens differ.
bool sameToken(const QByteArray &given, const QByteArray &expected)
{
    unsigned char diff = given.size() == expected.size() ? 0 : 1;
    for (qsizetype i = 0; i < expected.size(); ++i)
        diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
    return diff == 0;
}

QByteArray randomToken()
{
    QByteArray bytes(32, Qt::Uninitialized);
    QRandomGenerator::system()->fillRange(reinterpret_cast<quint32 *>(bytes.data()), bytes.size() / 4);
    return bytes.toHex();
}

// Writes a file readable by its owner only, atomically: created 0600 (never wider, not even for a moment),
// flushed, then renamed over `path`.
Result<void> writePrivateFile(const QString &path, const QByteArray &data)
{
    const QByteArray target = QFile::encodeName(path);
    const QByteArray temp = target + ".tmp-" + QByteArray::number(::getpid()) + '-' +
                            QByteArray::number(QRandomGenerator::system()->generate(), 16);
    const int fd = ::open(temp.constData(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    auto fail = [&](const char *what) {
        const QString reason = QString::fromLocal8Bit(std::strerror(errno));
        ::unlink(temp.constData());
        return Error{QStringLiteral("io"), QStringLiteral("cannot %1 %2: %3").arg(QLatin1String(what), path, reason)};
    };
    if (fd < 0)
        return fail("create");
    qsizetype done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.constData() + done, static_cast<size_t>(data.size() - done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ::close(fd);
            return fail("write");
        }
        done += n;
    }
    if (::fchmod(fd, 0600) != 0 || ::fsync(fd) != 0) {
        ::close(fd);
        return fail("write");
    }
    ::close(fd);
    if (::rename(temp.constData(), target.constData()) != 0)
        return fail("rename");
    return {};
}

// Splits the raw request target into percent-decoded path segments, so that an encoded "/" inside a run id
// ("a%2Fb") stays inside its segment (and is then refused as an invalid id) instead of adding a segment.
QStringList pathSegments(const QByteArray &target)
{
    QByteArray path = target;
    const qsizetype q = path.indexOf('?');
    if (q >= 0)
        path.truncate(q);
    QStringList segments;
    for (const QByteArray &raw : path.split('/')) {
        if (!raw.isEmpty())
            segments << QUrl::fromPercentEncoding(raw);
    }
    return segments;
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------

Result<DaemonOptions> parseDaemonArguments(const QStringList &arguments)
{
    QCommandLineParser parser;
    parser.setApplicationDescription(
        QStringLiteral("userfluxd: the Userflux orchestrator daemon. Serves the control API for one runs root,\n"
                       "creates run directories and launches one userflux-agent per run."));
    const QCommandLineOption runsDir(QStringLiteral("runs-dir"),
                                     QStringLiteral("Runs root (default: $USERFLUX_RUNS_DIR, else ./runs)."),
                                     QStringLiteral("DIR"));
    const QCommandLineOption listen(QStringLiteral("listen"),
                                    QStringLiteral("Address to listen on (default 127.0.0.1)."), QStringLiteral("ADDR"),
                                    QStringLiteral("127.0.0.1"));
    const QCommandLineOption allowRemote(QStringLiteral("allow-remote"),
                                         QStringLiteral("Allow a --listen address that is not loopback."));
    const QCommandLineOption port(QStringLiteral("port"), QStringLiteral("TCP port (default 0: any free port)."),
                                  QStringLiteral("PORT"), QStringLiteral("0"));
    const QCommandLineOption idleExit(
        QStringLiteral("idle-exit"),
        QStringLiteral("Exit after DURATION (e.g. 300s) with no active run and no API call (default: never)."),
        QStringLiteral("DURATION"));
    const QCommandLineOption pluginDir(QStringLiteral("plugin-dir"),
                                       QStringLiteral("Extra plugin folder (repeatable; forwarded to agents)."),
                                       QStringLiteral("DIR"));
    const QCommandLineOption agentProgram(
        QStringLiteral("agent-program"),
        QStringLiteral("The agent executable (default: userflux-agent beside userfluxd; for development and tests)."),
        QStringLiteral("PATH"));
    const QCommandLineOption help(QStringList{QStringLiteral("h"), QStringLiteral("help")},
                                  QStringLiteral("Show this help."));
    const QCommandLineOption version(QStringLiteral("version"), QStringLiteral("Show the version."));
    parser.addOptions({runsDir, listen, allowRemote, port, idleExit, pluginDir, agentProgram, help, version});

    auto usage = [](const QString &message) { return Error{QStringLiteral("usage"), message}; };
    if (!parser.parse(arguments))
        return usage(parser.errorText());
    if (!parser.positionalArguments().isEmpty())
        return usage(QStringLiteral("unexpected argument \"%1\"").arg(parser.positionalArguments().constFirst()));

    DaemonOptions o;
    o.helpText = parser.helpText();
    o.showHelp = parser.isSet(help);
    o.showVersion = parser.isSet(version);
    if (o.showHelp || o.showVersion)
        return o;

    o.runsRoot = RunStore::resolveRoot(parser.value(runsDir));
    o.listenText = parser.value(listen).trimmed();
    if (o.listenText == QLatin1String("localhost"))
        o.listen = QHostAddress(QHostAddress::LocalHost);
    else if (!o.listen.setAddress(o.listenText))
        return usage(QStringLiteral("--listen \"%1\" is not an IP address").arg(o.listenText));
    o.allowRemote = parser.isSet(allowRemote);
    if (!o.listen.isLoopback() && !o.allowRemote)
        return usage(QStringLiteral("--listen %1 is not a loopback address; add --allow-remote to accept remote "
                                    "clients (every call still needs the token)")
                         .arg(o.listenText));
    bool okPort = false;
    const uint p = parser.value(port).toUInt(&okPort);
    if (!okPort || p > 65535)
        return usage(QStringLiteral("--port \"%1\" is not a port number (0..65535)").arg(parser.value(port)));
    o.port = static_cast<quint16>(p);
    if (parser.isSet(idleExit)) {
        Result<std::chrono::microseconds> d = parseDuration(parser.value(idleExit));
        if (!d)
            return usage(QStringLiteral("--idle-exit: %1").arg(d.error().message));
        if (d->count() <= 0)
            return usage(QStringLiteral("--idle-exit must be longer than 0s"));
        o.idleExit = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
    }
    for (const QString &d : parser.values(pluginDir))
        o.pluginDirs << QDir::current().absoluteFilePath(d);
    if (parser.isSet(agentProgram))
        o.agentProgram = QDir::current().absoluteFilePath(parser.value(agentProgram));
    return o;
}

// ---------------------------------------------------------------------------------------------------------------

struct Daemon::ActiveRun {
    QString id;
    QProcess *process = nullptr;    // child of the Daemon; deleted (later) when the agent has exited
    QByteArray stdoutBuffer;        // partial lines
    QByteArray stderrBuffer;
    std::chrono::milliseconds gracefulStop{30000};
    bool stopRequested = false;
    bool killed = false;            // we sent SIGKILL
    std::optional<Http::Responder> pendingCreate; // answered once the agent started (or failed to)
    TimeseriesReader timeseries;
};

Daemon::Daemon(DaemonOptions options, QObject *parent)
    : QObject(parent), m_options(std::move(options)), m_store(m_options.runsRoot)
{
    if (m_options.agentProgram.isEmpty())
        m_options.agentProgram = QCoreApplication::applicationDirPath() + QStringLiteral("/userflux-agent");
    m_lastActivity.start();
}

Daemon::~Daemon()
{
    // A daemon destroyed without shutdown() (e.g. a failed start) must not leave its endpoint behind.
    if (m_started && !m_finished)
        removeEndpointFile();
    for (auto &[id, run] : m_runs) {
        if (run->process) {
            run->process->disconnect(this);
            run->process->kill();
            run->process->waitForFinished(2000);
        }
    }
}

quint16 Daemon::port() const
{
    return m_server ? m_server->port() : 0;
}

int Daemon::activeRuns() const
{
    return static_cast<int>(m_runs.size() + m_orphans.size());
}

void Daemon::say(const QString &line)
{
    const QByteArray text = (RunStore::now() + QStringLiteral(" userfluxd: ") + line + QLatin1Char('\n')).toUtf8();
    std::fwrite(text.constData(), 1, static_cast<size_t>(text.size()), stderr);
    std::fflush(stderr);
}

void Daemon::log(const QString &runId, const QString &line)
{
    if (Result<void> r = m_store.appendLog(runId, QStringLiteral("daemon"), line); !r)
        say(QStringLiteral("run %1: %2").arg(runId, r.error().message));
}

Result<void> Daemon::start()
{
    if (!QDir().mkpath(m_options.runsRoot))
        return Error{QStringLiteral("io"), QStringLiteral("cannot create the runs root %1").arg(m_options.runsRoot)};

    // One daemon per runs root. QLockFile holds a pid and is taken over only when that process is gone, so a
    // crashed daemon does not lock its root forever.
    m_lock = std::make_unique<QLockFile>(QDir(m_options.runsRoot).filePath(QStringLiteral(".userfluxd.lock")));
    m_lock->setStaleLockTime(0);
    if (!m_lock->tryLock(0)) {
        if (m_lock->error() == QLockFile::LockFailedError) {
            qint64 pid = 0;
            QString host, app;
            m_lock->getLockInfo(&pid, &host, &app);
            return Error{QStringLiteral("already_running"),
                         QStringLiteral("another userfluxd (pid %1) already serves runs root %2")
                             .arg(pid)
                             .arg(m_options.runsRoot)};
        }
        return Error{QStringLiteral("io"), QStringLiteral("cannot lock the runs root %1").arg(m_options.runsRoot)};
    }

    m_host = std::make_unique<PluginHost>(m_options.pluginDirs);
    reconcileLeftovers();

    m_server = std::make_unique<Http::Server>();
    m_server->setMaxRequestSize(64 * 1024, 16 * 1024 * 1024);
    m_server->setHandler([this](const Http::Request &request, Http::Responder responder) {
        handle(request, std::move(responder));
    });
    if (!m_server->listen(m_options.listen, m_options.port))
        return Error{QStringLiteral("listen"), QStringLiteral("cannot listen on %1 port %2: %3")
                                                   .arg(m_options.listenText)
                                                   .arg(m_options.port)
                                                   .arg(m_server->errorString())};

    m_token = randomToken();
    if (Result<void> w = writeEndpointFile(); !w) {
        m_server->close();
        return w.error();
    }
    m_started = true;
    m_lastActivity.restart();

    if (m_options.idleExit) {
        m_idleTimer = new QTimer(this);
        m_idleTimer->setInterval(std::min<std::chrono::milliseconds>(*m_options.idleExit, 1000ms));
        connect(m_idleTimer, &QTimer::timeout, this, &Daemon::checkIdle);
        m_idleTimer->start();
    }
    m_orphanTimer = new QTimer(this);
    m_orphanTimer->setInterval(1000ms);
    connect(m_orphanTimer, &QTimer::timeout, this, &Daemon::checkOrphans);
    if (!m_orphans.empty())
        m_orphanTimer->start();

    say(QStringLiteral("listening on %1:%2 for runs root %3 (pid %4, version %5%6)")
            .arg(m_server->address().toString())
            .arg(m_server->port())
            .arg(m_options.runsRoot)
            .arg(QCoreApplication::applicationPid())
            .arg(QStringLiteral(USERFLUX_VERSION))
            .arg(m_options.idleExit ? QStringLiteral(", idle exit after %1 s")
                                          .arg(std::chrono::duration_cast<std::chrono::seconds>(*m_options.idleExit).count())
                                    : QString()));
    return {};
}

Result<void> Daemon::writeEndpointFile()
{
    QString address = m_server->address().toString();
    if (m_options.listen == QHostAddress(QHostAddress::Any) || m_options.listen == QHostAddress(QHostAddress::AnyIPv4))
        address = QStringLiteral("127.0.0.1"); // listening everywhere: local clients use loopback
    else if (m_options.listen == QHostAddress(QHostAddress::AnyIPv6))
        address = QStringLiteral("::1");
    const json endpoint{{"address", address.toStdString()},
                        {"port", m_server->port()},
                        {"token", m_token.toStdString()},
                        {"pid", QCoreApplication::applicationPid()},
                        {"version", USERFLUX_VERSION},
                        {"runs_root", m_options.runsRoot.toStdString()}};
    return writePrivateFile(Control::endpointFilePath(m_options.runsRoot),
                            QByteArray::fromStdString(endpoint.dump(2)) + '\n');
}

void Daemon::removeEndpointFile()
{
    // Only if it is still ours: a daemon that took over the root after us must keep its file.
    Result<Control::Endpoint> ep = Control::readEndpointFile(m_options.runsRoot);
    if (ep && ep->token.toLatin1() == m_token && ep->pid == QCoreApplication::applicationPid())
        QFile::remove(Control::endpointFilePath(m_options.runsRoot));
}

// Runs a previous daemon left in "created" or "running": the agent either still works (an orphan we watch
// until it ends) or is gone without a final status (then the run failed, and we say so).
void Daemon::reconcileLeftovers()
{
    for (const QString &id : m_store.runIds()) {
        Result<json> status = m_store.readStatus(id);
        if (!status)
            continue;
        const QString state = str(*status, "state");
        if (state != QLatin1String("created") && state != QLatin1String("running"))
            continue;
        const qint64 pid = status->contains("agent_pid") && (*status)["agent_pid"].is_number_integer()
                               ? (*status)["agent_pid"].get<qint64>()
                               : 0;
        if (pid > 0 && processAlive(pid) && isAgentOf(pid, m_store.runDir(id))) {
            m_orphans[id] = pid;
            log(id, QStringLiteral("userfluxd (pid %1) started; the agent (pid %2) is still running: watching it")
                        .arg(QCoreApplication::applicationPid())
                        .arg(pid));
            continue;
        }
        json s = *status;
        s["state"] = "failed";
        s["ended_at"] = RunStore::now().toStdString();
        s["message"] = pid > 0 ? QStringLiteral("the agent (pid %1) ended without writing a final status while no "
                                                "daemon was watching it")
                                     .arg(pid)
                                     .toStdString()
                               : std::string("the run never started: its daemon stopped before launching the agent");
        if (Result<void> w = m_store.writeStatus(id, s); w) {
            log(id, QStringLiteral("marked failed at daemon start: %1").arg(str(s, "message")));
        }
    }
}

void Daemon::checkOrphans()
{
    for (auto it = m_orphans.begin(); it != m_orphans.end();) {
        const QString id = it->first;
        const qint64 pid = it->second;
        if (processAlive(pid) && isAgentOf(pid, m_store.runDir(id))) {
            ++it;
            continue;
        }
        it = m_orphans.erase(it);
        Result<json> status = m_store.readStatus(id);
        if (status && !RunStore::isTerminalState(str(*status, "state"))) {
            json s = *status;
            s["state"] = "failed";
            s["ended_at"] = RunStore::now().toStdString();
            s["message"] =
                QStringLiteral("agent (pid %1) exited without writing a final status").arg(pid).toStdString();
            (void)m_store.writeStatus(id, s);
        }
        log(id, QStringLiteral("agent (pid %1) exited").arg(pid));
        m_lastActivity.restart();
    }
    if (m_orphans.empty() && m_orphanTimer)
        m_orphanTimer->stop();
    maybeFinishShutdown();
}

void Daemon::checkIdle()
{
    if (!m_options.idleExit || m_shuttingDown || activeRuns() > 0)
        return;
    if (std::chrono::milliseconds(m_lastActivity.elapsed()) >= *m_options.idleExit)
        shutdown(QStringLiteral("idle for %1 s with no active run")
                     .arg(std::chrono::duration_cast<std::chrono::seconds>(*m_options.idleExit).count()));
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP API

bool Daemon::authorized(const Http::Request &request) const
{
    const QByteArray header = request.header("Authorization").trimmed();
    static const QByteArray scheme = "bearer ";
    if (header.size() <= scheme.size() || header.left(scheme.size()).toLower() != scheme)
        return false;
    return sameToken(header.mid(scheme.size()).trimmed(), m_token);
}

void Daemon::handle(const Http::Request &request, Http::Responder responder)
{
    if (!authorized(request)) {
        // Nothing else for a caller without the token: no hint about routes or runs.
        sendJson(responder, 401, json{{"error", "unauthorized"}}, {{"WWW-Authenticate", "Bearer"}});
        return;
    }
    m_lastActivity.restart();
    try {
        route(request, responder);
    } catch (const std::exception &e) {
        sendError(responder, 500, QStringLiteral("internal"), QString::fromUtf8(e.what()));
    }
}

void Daemon::route(const Http::Request &request, Http::Responder &responder)
{
    const QStringList seg = pathSegments(request.target);
    const QByteArray method = request.method;
    auto notAllowed = [&](const QByteArray &allow) {
        sendJson(responder, 405,
                 json{{"error", "method_not_allowed"},
                      {"message", QStringLiteral("%1 is not allowed here (allowed: %2)")
                                      .arg(QString::fromLatin1(method), QString::fromLatin1(allow))
                                      .toStdString()}},
                 {{"Allow", allow}});
    };
    if (seg.size() < 3 || seg[0] != QLatin1String("api") || seg[1] != QLatin1String("v1")) {
        sendError(responder, 404, QStringLiteral("not_found"),
                  QStringLiteral("no such API path: %1").arg(QString::fromUtf8(request.target)));
        return;
    }
    const QString what = seg[2];
    if (what == QLatin1String("health") && seg.size() == 3) {
        if (method != "GET")
            return notAllowed("GET");
        sendJson(responder, 200,
                 json{{"status", "ok"},
                      {"version", USERFLUX_VERSION},
                      {"runs_root", m_options.runsRoot.toStdString()},
                      {"active_runs", activeRuns()},
                      {"pid", QCoreApplication::applicationPid()}});
        return;
    }
    if (what == QLatin1String("plugins") && seg.size() == 3) {
        if (method != "GET")
            return notAllowed("GET");
        getPlugins(responder);
        return;
    }
    if (what == QLatin1String("runs")) {
        if (seg.size() == 3) {
            if (method == "GET")
                getRuns(responder);
            else if (method == "POST")
                createRun(request, responder);
            else
                notAllowed("GET, POST");
            return;
        }
        const QString id = seg[3];
        if (seg.size() <= 5) {
            const QString action = seg.size() == 5 ? seg[4] : QString();
            const bool known = action.isEmpty() || action == QLatin1String("stop") ||
                               action == QLatin1String("timeseries") || action == QLatin1String("summary");
            if (known) {
                if (!isValidRunId(id)) {
                    sendError(responder, 400, QStringLiteral("invalid_run_id"),
                              QStringLiteral("invalid run id \"%1\": expected [A-Za-z0-9][A-Za-z0-9._-]{0,63}").arg(id));
                    return;
                }
                if (action == QLatin1String("stop")) {
                    if (method != "POST")
                        return notAllowed("POST");
                    stopRun(id, responder);
                    return;
                }
                if (method != "GET")
                    return notAllowed("GET");
                if (action.isEmpty())
                    getRun(id, responder);
                else if (action == QLatin1String("summary"))
                    getSummary(id, responder);
                else
                    getTimeseries(id, request, responder);
                return;
            }
        }
    }
    sendError(responder, 404, QStringLiteral("not_found"),
              QStringLiteral("no such API path: %1").arg(QString::fromUtf8(request.target)));
}

void Daemon::createRun(const Http::Request &request, Http::Responder responder)
{
    if (m_shuttingDown) {
        sendError(responder, 503, QStringLiteral("shutting_down"), QStringLiteral("userfluxd is shutting down"));
        return;
    }
    const json body = json::parse(request.body.constData(), request.body.constData() + request.body.size(), nullptr,
                                  false);
    if (body.is_discarded() || !body.is_object()) {
        sendError(responder, 400, QStringLiteral("bad_request"),
                  QStringLiteral("the body must be a JSON object {\"config\": {...}, \"config_dir\": \"/abs/folder\"}"));
        return;
    }
    if (!body.contains("config") || !body["config"].is_object()) {
        sendError(responder, 400, QStringLiteral("bad_request"), QStringLiteral("\"config\" must be a JSON object"));
        return;
    }
    const QString configDir = str(body, "config_dir");
    if (configDir.isEmpty() || !QDir::isAbsolutePath(configDir) || !QFileInfo(configDir).isDir()) {
        sendError(responder, 400, QStringLiteral("bad_request"),
                  QStringLiteral("\"config_dir\" must be the absolute path of an existing folder (the config "
                                 "file's folder), got \"%1\"")
                      .arg(configDir));
        return;
    }
    const json &config = body["config"];

    const ConfigErrors errors = validateConfig(config, *m_host, configDir);
    if (!errors.isEmpty()) {
        json list = json::array();
        for (const ConfigError &e : errors)
            list.push_back(json{{"path", e.path.toStdString()}, {"message", e.message.toStdString()}});
        sendJson(responder, 400,
                 json{{"error", "invalid_config"},
                      {"message", QStringLiteral("the config has %1 error(s)").arg(errors.size()).toStdString()},
                      {"errors", list}});
        return;
    }

    QStringList dataFiles;
    const QString scenarioId = str(config["scenario"], "plugin");
    if (Result<IScenarioPlugin *> scenario = m_host->scenario(scenarioId); scenario)
        dataFiles = (*scenario)->dataFiles(config["scenario"]);

    std::chrono::milliseconds gracefulStop = 30s;
    if (config.contains("load")) {
        if (Result<LoadPlan> plan = parseLoadPlan(config["load"]); plan)
            gracefulStop = std::chrono::duration_cast<std::chrono::milliseconds>(plan->gracefulStop);
    }

    Result<QString> runId = m_store.createRun(config, configDir, dataFiles);
    if (!runId) {
        const bool userError = runId.error().code == QLatin1String("invalid_data_file") ||
                               runId.error().code == QLatin1String("invalid_config");
        sendError(responder, userError ? 400 : 500, runId.error().code, runId.error().message);
        return;
    }
    log(*runId, QStringLiteral("run created by userfluxd (pid %1); config from %2%3")
                    .arg(QCoreApplication::applicationPid())
                    .arg(configDir)
                    .arg(dataFiles.isEmpty() ? QString()
                                             : QStringLiteral("; data files copied: %1").arg(dataFiles.join(QStringLiteral(", ")))));
    say(QStringLiteral("run %1 created").arg(*runId));
    launchAgent(*runId, gracefulStop, std::move(responder));
}

void Daemon::launchAgent(const QString &runId, std::chrono::milliseconds gracefulStop, Http::Responder responder)
{
    auto run = std::make_unique<ActiveRun>();
    run->id = runId;
    run->gracefulStop = gracefulStop;
    run->pendingCreate = std::move(responder);
    run->timeseries = TimeseriesReader(m_store.timeseriesPath(runId));

    auto *process = new QProcess(this);
    run->process = process;
    QStringList args{QStringLiteral("--run-dir"), m_store.runDir(runId)};
    for (const QString &dir : std::as_const(m_options.pluginDirs))
        args << QStringLiteral("--plugin-dir") << dir;
    // No shell: the program and each argument are passed as they are.
    process->setProgram(m_options.agentProgram);
    process->setArguments(args);
    process->setWorkingDirectory(m_store.runDir(runId));
    process->setStandardInputFile(QProcess::nullDevice());
    process->setProcessChannelMode(QProcess::SeparateChannels);
    const pid_t daemonPid = ::getpid();
    process->setChildProcessModifier([daemonPid] {
        // Runs in the child between fork and exec (async-signal-safe calls only). Its own process group: a
        // Ctrl-C aimed at a foreground daemon reaches the daemon only, which then stops agents in order. And
        // if the daemon dies, even by SIGKILL, the agent gets SIGTERM and stops gracefully on its own.
        ::setpgid(0, 0);
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != daemonPid)
            ::raise(SIGTERM);
    });

    connect(process, &QProcess::readyReadStandardOutput, this,
            [this, runId] { drainAgentOutput(runId, QProcess::StandardOutput, false); });
    connect(process, &QProcess::readyReadStandardError, this,
            [this, runId] { drainAgentOutput(runId, QProcess::StandardError, false); });
    connect(process, &QProcess::started, this, [this, runId] { onAgentStarted(runId); });
    connect(process, &QProcess::errorOccurred, this, [this, runId](QProcess::ProcessError error) {
        if (error == QProcess::FailedToStart)
            onAgentFailedToStart(runId);
    });
    connect(process, &QProcess::finished, this, [this, runId](int exitCode, QProcess::ExitStatus status) {
        onAgentFinished(runId, exitCode, status);
    });

    m_runs[runId] = std::move(run);
    process->start();
}

void Daemon::onAgentStarted(const QString &runId)
{
    const auto it = m_runs.find(runId);
    if (it == m_runs.end())
        return;
    ActiveRun &run = *it->second;
    const qint64 pid = run.process->processId();
    Result<json> status = m_store.readStatus(runId);
    json s = status ? *status : RunStore::initialStatus(runId);
    // The agent writes only a final state; should it already have (a very fast run), keep its word.
    if (str(s, "state") == QLatin1String("created")) {
        s["state"] = "running";
        s["started_at"] = RunStore::now().toStdString();
        s["agent_pid"] = pid;
        if (Result<void> w = m_store.writeStatus(runId, s); !w)
            say(QStringLiteral("run %1: %2").arg(runId, w.error().message));
    }
    log(runId, QStringLiteral("agent started (pid %1): %2 %3")
                   .arg(pid)
                   .arg(run.process->program(), run.process->arguments().join(QLatin1Char(' '))));
    say(QStringLiteral("run %1: agent started (pid %2)").arg(runId).arg(pid));
    if (run.pendingCreate) {
        sendJson(*run.pendingCreate, 201,
                 json{{"run_id", runId.toStdString()},
                      {"state", str(s, "state").toStdString()},
                      {"run_dir", m_store.runDir(runId).toStdString()},
                      {"agent_pid", pid}});
        run.pendingCreate.reset();
    }
    // A stop asked for before the agent was up (shutdown during start) is delivered now.
    if (run.stopRequested || m_shuttingDown) {
        run.stopRequested = false;
        requestStop(runId, m_shuttingDown ? QStringLiteral("daemon shutting down") : QStringLiteral("stop requested"));
    }
}

void Daemon::onAgentFailedToStart(const QString &runId)
{
    const auto it = m_runs.find(runId);
    if (it == m_runs.end())
        return;
    std::unique_ptr<ActiveRun> run = std::move(it->second);
    m_runs.erase(it);
    const QString message = QStringLiteral("agent failed to start: %1 (%2)")
                                .arg(run->process->errorString(), run->process->program());
    Result<json> status = m_store.readStatus(runId);
    json s = status ? *status : RunStore::initialStatus(runId);
    s["state"] = "failed";
    s["ended_at"] = RunStore::now().toStdString();
    s["message"] = message.toStdString();
    s["exit_code"] = nullptr;
    (void)m_store.writeStatus(runId, s);
    log(runId, message);
    say(QStringLiteral("run %1: %2").arg(runId, message));
    if (run->pendingCreate) {
        sendJson(*run->pendingCreate, 201,
                 json{{"run_id", runId.toStdString()},
                      {"state", "failed"},
                      {"message", message.toStdString()},
                      {"run_dir", m_store.runDir(runId).toStdString()}});
    }
    run->process->disconnect(this);
    run->process->deleteLater();
    m_lastActivity.restart();
    maybeFinishShutdown();
}

void Daemon::drainAgentOutput(const QString &runId, QProcess::ProcessChannel channel, bool flushAll)
{
    const auto it = m_runs.find(runId);
    if (it == m_runs.end())
        return;
    ActiveRun &run = *it->second;
    QByteArray &buffer = channel == QProcess::StandardOutput ? run.stdoutBuffer : run.stderrBuffer;
    buffer += channel == QProcess::StandardOutput ? run.process->readAllStandardOutput()
                                                  : run.process->readAllStandardError();
    QString lines;
    qsizetype start = 0;
    for (;;) {
        const qsizetype nl = buffer.indexOf('\n', start);
        if (nl < 0)
            break;
        lines += QString::fromUtf8(buffer.constData() + start, nl - start) + QLatin1Char('\n');
        start = nl + 1;
    }
    buffer.remove(0, start);
    if (!buffer.isEmpty() && (flushAll || buffer.size() > MaxLineBytes)) {
        lines += QString::fromUtf8(buffer) + QLatin1Char('\n');
        buffer.clear();
    }
    if (lines.isEmpty())
        return;
    lines.chop(1);
    if (Result<void> r = m_store.appendLog(runId, QStringLiteral("agent"), lines); !r)
        say(QStringLiteral("run %1: %2").arg(runId, r.error().message));
}

void Daemon::onAgentFinished(const QString &runId, int exitCode, QProcess::ExitStatus exitStatus)
{
    if (m_runs.find(runId) == m_runs.end())
        return;
    drainAgentOutput(runId, QProcess::StandardOutput, true);
    drainAgentOutput(runId, QProcess::StandardError, true);
    const auto it = m_runs.find(runId);
    std::unique_ptr<ActiveRun> run = std::move(it->second);
    m_runs.erase(it);

    // Qt reports the signal number as the exit code of a crash exit.
    const bool crashed = exitStatus == QProcess::CrashExit;
    const QString how = crashed ? QStringLiteral("agent killed by signal %1").arg(exitCode)
                                : QStringLiteral("agent exited with code %1").arg(exitCode);
    log(runId, how);
    say(QStringLiteral("run %1: %2").arg(runId, how));

    Result<json> status = m_store.readStatus(runId);
    json s = status ? *status : RunStore::initialStatus(runId);
    const QString state = str(s, "state");
    if (!RunStore::isTerminalState(state)) {
        QString message;
        if (crashed && run->killed)
            message = QStringLiteral("agent did not stop within graceful_stop + %1 s after a stop request and was "
                                     "killed (signal %2)")
                          .arg(std::chrono::duration_cast<std::chrono::seconds>(KillGrace).count())
                          .arg(exitCode);
        else if (crashed)
            message = QStringLiteral("agent crashed (signal %1)").arg(exitCode);
        else
            message = QStringLiteral("agent exited with code %1 without writing a final status").arg(exitCode);
        s["state"] = "failed";
        s["ended_at"] = RunStore::now().toStdString();
        s["message"] = message.toStdString();
        s["exit_code"] = crashed ? json(nullptr) : json(exitCode);
        if (Result<void> w = m_store.writeStatus(runId, s); !w)
            say(QStringLiteral("run %1: %2").arg(runId, w.error().message));
        log(runId, QStringLiteral("run failed: %1").arg(message));
    } else {
        log(runId, QStringLiteral("run %1 (final status written by the agent)").arg(state));
    }
    if (run->pendingCreate) // exited before started() was seen (should not happen, but answer anyway)
        sendJson(*run->pendingCreate, 201,
                 json{{"run_id", runId.toStdString()},
                      {"state", str(s, "state").toStdString()},
                      {"run_dir", m_store.runDir(runId).toStdString()}});
    run->process->disconnect(this);
    run->process->deleteLater();
    m_lastActivity.restart();
    maybeFinishShutdown();
}

void Daemon::requestStop(const QString &runId, const QString &why)
{
    const auto it = m_runs.find(runId);
    if (it != m_runs.end()) {
        ActiveRun &run = *it->second;
        if (run.process->state() != QProcess::Running) {
            run.stopRequested = true; // delivered in onAgentStarted()
            return;
        }
        if (run.stopRequested) {
            // A second stop means "now": the agent takes a second SIGTERM as a hard stop (requests in flight are
            // interrupted), as k6 takes a second Ctrl-C.
            log(runId, QStringLiteral("%1 again: sending SIGTERM again (stop at once)").arg(why));
            run.process->terminate();
            return;
        }
        run.stopRequested = true;
        log(runId, QStringLiteral("%1: sending SIGTERM to the agent (pid %2); SIGKILL in %3 s if it is still running")
                       .arg(why)
                       .arg(run.process->processId())
                       .arg(std::chrono::duration_cast<std::chrono::seconds>(run.gracefulStop + KillGrace).count()));
        run.process->terminate();
        QPointer<QProcess> process = run.process;
        QTimer::singleShot(run.gracefulStop + KillGrace, process, [this, runId, process] {
            if (!process || process->state() == QProcess::NotRunning)
                return;
            const auto again = m_runs.find(runId);
            if (again == m_runs.end())
                return;
            again->second->killed = true;
            log(runId, QStringLiteral("agent (pid %1) still running after graceful_stop + %2 s: sending SIGKILL")
                           .arg(process->processId())
                           .arg(std::chrono::duration_cast<std::chrono::seconds>(KillGrace).count()));
            process->kill();
        });
        return;
    }
    const auto orphan = m_orphans.find(runId);
    if (orphan != m_orphans.end()) {
        const qint64 pid = orphan->second;
        if (isAgentOf(pid, m_store.runDir(runId))) {
            log(runId, QStringLiteral("%1: sending SIGTERM to the agent (pid %2)").arg(why).arg(pid));
            ::kill(static_cast<pid_t>(pid), SIGTERM);
            // Its graceful_stop is unknown here: read it from the run's config.
            std::chrono::milliseconds grace = 30s;
            if (Result<json> config = m_store.readConfig(runId); config && config->contains("load")) {
                if (Result<LoadPlan> plan = parseLoadPlan((*config)["load"]); plan)
                    grace = std::chrono::duration_cast<std::chrono::milliseconds>(plan->gracefulStop);
            }
            const QString dir = m_store.runDir(runId);
            QTimer::singleShot(grace + KillGrace, this, [this, runId, pid, dir] {
                if (m_orphans.count(runId) && processAlive(pid) && isAgentOf(pid, dir)) {
                    log(runId, QStringLiteral("agent (pid %1) still running: sending SIGKILL").arg(pid));
                    ::kill(static_cast<pid_t>(pid), SIGKILL);
                }
            });
        }
    }
}

void Daemon::stopRun(const QString &runId, Http::Responder &responder)
{
    if (!m_store.exists(runId)) {
        sendError(responder, 404, QStringLiteral("not_found"), QStringLiteral("no run %1").arg(runId));
        return;
    }
    if (m_runs.count(runId) || m_orphans.count(runId)) {
        say(QStringLiteral("run %1: stop requested").arg(runId));
        requestStop(runId, QStringLiteral("stop requested through the API"));
        sendJson(responder, 202, json{{"run_id", runId.toStdString()}, {"state", "stopping"}});
        return;
    }
    Result<json> status = m_store.readStatus(runId);
    const QString state = status ? str(*status, "state") : QStringLiteral("unknown");
    sendJson(responder, 409,
             json{{"error", "not_active"},
                  {"state", state.toStdString()},
                  {"message", QStringLiteral("run %1 is not active (state %2)").arg(runId, state).toStdString()}});
}

void Daemon::getRuns(Http::Responder &responder)
{
    struct Item {
        QString created;
        QString id;
        json value;
    };
    std::vector<Item> items;
    for (const QString &id : m_store.runIds()) {
        Result<json> status = m_store.readStatus(id);
        Result<json> config = m_store.readConfig(id);
        json item{{"run_id", id.toStdString()}};
        if (status) {
            item["state"] = status->value("state", "unknown");
            item["created_at"] = status->value("created_at", json(nullptr));
            item["started_at"] = status->value("started_at", json(nullptr));
            item["ended_at"] = status->value("ended_at", json(nullptr));
            item["exit_code"] = status->value("exit_code", json(nullptr));
        } else {
            item["state"] = "unknown";
            item["created_at"] = nullptr;
        }
        item["name"] = config && config->contains("name") && (*config)["name"].is_string() ? (*config)["name"]
                                                                                           : json("");
        items.push_back({status ? str(*status, "created_at") : QString(), id, std::move(item)});
    }
    std::sort(items.begin(), items.end(), [](const Item &a, const Item &b) {
        if (a.created != b.created)
            return a.created > b.created;
        return a.id > b.id;
    });
    json runs = json::array();
    for (Item &i : items)
        runs.push_back(std::move(i.value));
    sendJson(responder, 200, json{{"runs", runs}});
}

void Daemon::getRun(const QString &runId, Http::Responder &responder)
{
    Result<json> status = m_store.readStatus(runId);
    if (!status) {
        const bool missing = status.error().code == QLatin1String("not_found");
        sendError(responder, missing ? 404 : 500, status.error().code, status.error().message);
        return;
    }
    LiveFigures live;
    const auto it = m_runs.find(runId);
    if (it != m_runs.end()) {
        // Active: read only what the agent appended since the last poll.
        (void)it->second->timeseries.refresh();
        live = LiveFigures::fromBuckets(it->second->timeseries.buckets());
    } else if (Result<std::vector<json>> buckets = m_store.readTimeseries(runId); buckets) {
        live = LiveFigures::fromBuckets(*buckets);
    }
    Result<json> config = m_store.readConfig(runId);
    const QString name = config ? str(*config, "name") : QString();
    sendJson(responder, 200,
             json{{"status", *status},
                  {"name", name.toStdString()},
                  {"live", live.toJson()},
                  {"run_dir", m_store.runDir(runId).toStdString()},
                  {"has_summary", QFileInfo::exists(m_store.runDir(runId) + QStringLiteral("/summary.json"))}});
}

void Daemon::getSummary(const QString &runId, Http::Responder &responder)
{
    Result<json> summary = m_store.readSummary(runId);
    if (!summary) {
        const bool missing = summary.error().code == QLatin1String("not_found");
        sendError(responder, missing ? 404 : 500, summary.error().code, summary.error().message);
        return;
    }
    sendJson(responder, 200, *summary);
}

void Daemon::getTimeseries(const QString &runId, const Http::Request &request, Http::Responder &responder)
{
    double since = 0;
    if (request.query.hasQueryItem(QStringLiteral("since"))) {
        bool ok = false;
        since = request.query.queryItemValue(QStringLiteral("since")).toDouble(&ok);
        if (!ok) {
            sendError(responder, 400, QStringLiteral("bad_request"),
                      QStringLiteral("since must be a number of seconds since the run start"));
            return;
        }
    }
    if (!m_store.exists(runId)) {
        sendError(responder, 404, QStringLiteral("not_found"), QStringLiteral("no run %1").arg(runId));
        return;
    }
    std::vector<json> all;
    const auto it = m_runs.find(runId);
    if (it != m_runs.end()) {
        (void)it->second->timeseries.refresh();
        all = it->second->timeseries.buckets();
    } else if (Result<std::vector<json>> buckets = m_store.readTimeseries(runId); buckets) {
        all = std::move(*buckets);
    }
    json out = json::array();
    for (const json &b : all) {
        const auto t = b.find("t_s");
        if (t != b.end() && t->is_number() && t->get<double>() >= since)
            out.push_back(b);
    }
    sendJson(responder, 200, json{{"buckets", out}});
}

void Daemon::getPlugins(Http::Responder &responder)
{
    json list = json::array();
    for (const PluginInfo &p : m_host->plugins()) {
        list.push_back(json{{"id", p.id.toStdString()},
                            {"kind", p.kind.toStdString()},
                            {"version", p.version.toStdString()},
                            {"api_version", p.apiVersion},
                            {"description", p.description.toStdString()},
                            {"file", p.file.toStdString()},
                            {"usable", p.usable},
                            {"problem", p.problem.toStdString()}});
    }
    json dirs = json::array();
    for (const QString &d : m_host->searchedDirs())
        dirs.push_back(d.toStdString());
    sendJson(responder, 200, json{{"plugins", list}, {"searched_dirs", dirs}});
}

// ---------------------------------------------------------------------------------------------------------------
// Shutdown

void Daemon::shutdown(const QString &reason)
{
    if (m_shuttingDown)
        return;
    m_shuttingDown = true;
    if (m_idleTimer)
        m_idleTimer->stop();
    say(QStringLiteral("stopping (%1)%2")
            .arg(reason)
            .arg(activeRuns() ? QStringLiteral(": stopping %1 active run(s)").arg(activeRuns()) : QString()));
    std::chrono::milliseconds longest = 0ms;
    QStringList ids;
    for (const auto &[id, run] : m_runs) {
        ids << id;
        longest = std::max(longest, run->gracefulStop);
    }
    for (const auto &[id, pid] : m_orphans)
        ids << id;
    for (const QString &id : std::as_const(ids))
        requestStop(id, QStringLiteral("daemon shutting down (%1)").arg(reason));
    if (activeRuns() == 0) {
        QTimer::singleShot(0, this, &Daemon::finishShutdown);
        return;
    }
    if (!m_orphans.empty() && m_orphanTimer)
        m_orphanTimer->start();
    // Bounded: each agent is SIGKILLed after its graceful_stop + 5 s; give them a little more, then go anyway.
    QTimer::singleShot(longest + KillGrace + ShutdownExtra, this, [this] {
        if (m_finished)
            return;
        say(QStringLiteral("%1 agent(s) did not exit in time; exiting anyway").arg(activeRuns()));
        for (auto &[id, run] : m_runs) {
            run->process->disconnect(this);
            run->process->kill();
            Result<json> status = m_store.readStatus(id);
            if (status && !RunStore::isTerminalState(str(*status, "state"))) {
                json s = *status;
                s["state"] = "failed";
                s["ended_at"] = RunStore::now().toStdString();
                s["message"] = "agent did not exit while userfluxd was shutting down";
                (void)m_store.writeStatus(id, s);
            }
        }
        m_runs.clear();
        m_orphans.clear();
        finishShutdown();
    });
}

void Daemon::maybeFinishShutdown()
{
    if (m_shuttingDown && !m_finished && activeRuns() == 0)
        QTimer::singleShot(0, this, &Daemon::finishShutdown);
}

void Daemon::finishShutdown()
{
    if (m_finished)
        return;
    m_finished = true;
    if (m_server)
        m_server->close();
    if (m_started)
        removeEndpointFile();
    if (m_lock)
        m_lock->unlock();
    say(QStringLiteral("stopped"));
    Q_EMIT finished(0);
}

} // namespace Userflux
