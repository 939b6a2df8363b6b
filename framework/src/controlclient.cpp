#include "userflux/controlclient.h"

#include "userflux/runid.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QNetworkAccessManager>
#include <QNetworkProxy>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QProcess>
#include <QUrl>

#include <QCoroNetworkReply>
#include <QCoroTimer>

#include <cerrno>
#include <csignal>
#include <sys/types.h>

namespace Userflux::Control {

using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

QString jsonString(const json &obj, const char *key)
{
    const auto it = obj.find(key);
    return it != obj.end() && it->is_string() ? QString::fromStdString(it->get<std::string>()) : QString();
}

bool processAlive(qint64 pid)
{
    if (pid <= 0)
        return false;
    return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

QString sameDirKey(const QString &path)
{
    const QString canonical = QFileInfo(path).canonicalFilePath();
    return canonical.isEmpty() ? QDir::cleanPath(path) : canonical;
}

// The last few non-empty lines a started daemon wrote to its log (after `offset`), for error messages.
QString logTail(const QString &path, qint64 offset)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly) || !f.seek(offset))
        return {};
    QStringList lines = QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    while (lines.size() > 5)
        lines.removeFirst();
    return lines.join(QStringLiteral(" / "));
}

QString describe(const QByteArray &verb, const QString &path)
{
    return QString::fromLatin1(verb) + QLatin1Char(' ') + path.section(QLatin1Char('?'), 0, 0);
}

// Refused before anything is sent: an id like ".." would otherwise be normalised away by the URL.
QCoro::Task<Result<json>> invalidIdTask(QString runId)
{
    co_return Error{QStringLiteral("invalid_run_id"),
                    QStringLiteral("invalid run id \"%1\": expected [A-Za-z0-9][A-Za-z0-9._-]{0,63}").arg(runId)};
}

} // namespace

QString endpointFilePath(const QString &runsRoot)
{
    return QDir(runsRoot).filePath(QLatin1String(EndpointFileName));
}

Result<Endpoint> readEndpointFile(const QString &runsRoot)
{
    const QString path = endpointFilePath(runsRoot);
    QFile f(path);
    if (!f.exists())
        return Error{QStringLiteral("no_daemon"), QStringLiteral("no userfluxd serves runs root %1").arg(runsRoot)};
    if (!f.open(QIODevice::ReadOnly))
        return Error{QStringLiteral("io"), QStringLiteral("cannot read %1: %2").arg(path, f.errorString())};
    const QByteArray data = f.readAll();
    const json j = json::parse(data.constData(), data.constData() + data.size(), nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return Error{QStringLiteral("json"), QStringLiteral("%1 is not a JSON object").arg(path)};
    Endpoint ep;
    ep.address = jsonString(j, "address");
    ep.token = jsonString(j, "token");
    ep.version = jsonString(j, "version");
    ep.runsRoot = jsonString(j, "runs_root");
    if (j.contains("port") && j["port"].is_number_integer()) {
        const auto port = j["port"].get<qint64>();
        if (port > 0 && port < 65536)
            ep.port = static_cast<quint16>(port);
    }
    if (j.contains("pid") && j["pid"].is_number_integer())
        ep.pid = j["pid"].get<qint64>();
    if (ep.address.isEmpty() || ep.port == 0 || ep.token.isEmpty())
        return Error{QStringLiteral("json"), QStringLiteral("%1 lacks address, port or token").arg(path)};
    return ep;
}

Client::Client(const QString &runsRoot, QObject *parent)
    : QObject(parent), m_runsRoot(runsRoot), m_nam(new QNetworkAccessManager(this))
{
    // The daemon is local (or named explicitly): never go through a proxy from the environment.
    m_nam->setProxy(QNetworkProxy::NoProxy);
    m_nam->setRedirectPolicy(QNetworkRequest::ManualRedirectPolicy);
}

Client::~Client() = default;

QString Client::daemonProgram() const
{
    if (!m_daemonProgram.isEmpty())
        return m_daemonProgram;
    return QCoreApplication::applicationDirPath() + QStringLiteral("/userfluxd");
}

QStringList Client::configErrorLines(const Error &error)
{
    return error.message.split(QLatin1Char('\n'), Qt::SkipEmptyParts);
}

QCoro::Task<Result<void>> Client::probe(Endpoint endpoint)
{
    const Endpoint previous = m_endpoint;
    m_endpoint = endpoint;
    Result<json> h = co_await call("GET", QStringLiteral("/api/v1/health"));
    if (!h) {
        m_endpoint = previous;
        co_return h.error();
    }
    const QString root = jsonString(*h, "runs_root");
    if (!root.isEmpty() && sameDirKey(root) != sameDirKey(m_runsRoot)) {
        m_endpoint = previous;
        co_return Error{QStringLiteral("wrong_daemon"),
                        QStringLiteral("the daemon at %1:%2 serves runs root %3, not %4")
                            .arg(endpoint.address).arg(endpoint.port).arg(root, m_runsRoot)};
    }
    m_endpoint.version = jsonString(*h, "version");
    co_return Result<void>{};
}

QCoro::Task<Result<void>> Client::connectToDaemon()
{
    Result<Endpoint> ep = readEndpointFile(m_runsRoot);
    if (!ep)
        co_return ep.error();
    co_return co_await probe(*ep);
}

QCoro::Task<Result<void>> Client::ensureDaemon()
{
    Result<void> first = co_await connectToDaemon();
    if (first)
        co_return Result<void>{};

    if (!QDir().mkpath(m_runsRoot))
        co_return Error{QStringLiteral("daemon_start_failed"),
                        QStringLiteral("cannot create the runs root %1").arg(m_runsRoot)};

    const QString program = daemonProgram();
    if (!QFileInfo(program).isExecutable())
        co_return Error{QStringLiteral("daemon_start_failed"),
                        QStringLiteral("cannot start userfluxd: %1 is not an executable").arg(program)};

    const QString logPath = QDir(m_runsRoot).filePath(QLatin1String(DaemonLogFileName));
    // Every auto-started daemon appends to the same log: keep one previous generation past 1 MiB.
    if (QFileInfo(logPath).size() > 1024 * 1024) {
        QFile::remove(logPath + QStringLiteral(".1"));
        QFile::rename(logPath, logPath + QStringLiteral(".1"));
    }
    const qint64 logOffset = QFileInfo(logPath).size();
    QStringList args{QStringLiteral("--runs-dir"), m_runsRoot};
    if (!m_idleExit.isEmpty())
        args << QStringLiteral("--idle-exit") << m_idleExit;
    for (const QString &dir : std::as_const(m_pluginDirs))
        args << QStringLiteral("--plugin-dir") << QDir(dir).absolutePath();

    // Detached: the daemon runs in its own session, so a Ctrl-C in the caller's terminal does not reach it.
    QProcess process;
    process.setProgram(program);
    process.setArguments(args);
    process.setWorkingDirectory(m_runsRoot);
    process.setStandardInputFile(QProcess::nullDevice());
    process.setStandardOutputFile(logPath, QIODevice::Append);
    process.setStandardErrorFile(logPath, QIODevice::Append);
    qint64 pid = 0;
    if (!process.startDetached(&pid))
        co_return Error{QStringLiteral("daemon_start_failed"),
                        QStringLiteral("cannot start %1: %2").arg(program, process.errorString())};

    const auto deadline = std::chrono::steady_clock::now() + m_startTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
        co_await QCoro::sleepFor(100ms);
        Result<Endpoint> ep = readEndpointFile(m_runsRoot);
        if (ep && (ep->pid == pid || !processAlive(pid))) {
            Result<void> r = co_await probe(*ep);
            if (r) {
                if (ep->pid == pid) {
                    const QString message =
                        QStringLiteral("started userfluxd (pid %1) for runs root %2").arg(pid).arg(m_runsRoot);
                    Q_EMIT daemonStarted(pid, m_runsRoot, message);
                }
                co_return Result<void>{};
            }
        }
        if (!processAlive(pid)) {
            // It exited: maybe another daemon won a race for this root (ours then exits 3); one last look.
            Result<void> again = co_await connectToDaemon();
            if (again)
                co_return Result<void>{};
            const QString tail = logTail(logPath, logOffset);
            co_return Error{QStringLiteral("daemon_start_failed"),
                            QStringLiteral("userfluxd (pid %1) exited at start%2 (log: %3)")
                                .arg(pid)
                                .arg(tail.isEmpty() ? QString() : QStringLiteral(": ") + tail, logPath)};
        }
    }
    co_return Error{QStringLiteral("daemon_start_failed"),
                    QStringLiteral("userfluxd (pid %1) did not answer within %2 s (log: %3)")
                        .arg(pid)
                        .arg(std::chrono::duration_cast<std::chrono::seconds>(m_startTimeout).count())
                        .arg(logPath)};
}

QCoro::Task<Result<json>> Client::call(QByteArray verb, QString path, json body)
{
    if (!isConnected())
        co_return Error{QStringLiteral("no_daemon"),
                        QStringLiteral("not connected to userfluxd (no daemon found for runs root %1)").arg(m_runsRoot)};
    const Endpoint ep = m_endpoint;

    QUrl url;
    url.setScheme(QStringLiteral("http"));
    url.setHost(ep.address);
    url.setPort(ep.port);
    const qsizetype q = path.indexOf(QLatin1Char('?'));
    if (q >= 0) {
        url.setPath(path.left(q));
        url.setQuery(path.mid(q + 1));
    } else {
        url.setPath(path);
    }

    QNetworkRequest request(url);
    request.setRawHeader("Authorization", "Bearer " + ep.token.toLatin1());
    request.setRawHeader("Accept", "application/json");
    request.setAttribute(QNetworkRequest::Http2AllowedAttribute, false);
    QByteArray payload;
    if (!body.is_null()) {
        request.setHeader(QNetworkRequest::ContentTypeHeader, QByteArrayLiteral("application/json"));
        payload = QByteArray::fromStdString(body.dump());
    }

    QNetworkReply *reply = m_nam->sendCustomRequest(request, verb, payload);
    // Abort (never delete) an unfinished reply: a co_await on a deleted reply would never resume.
    const bool finished = co_await qCoro(reply).waitForFinished(m_timeout);
    if (!finished)
        reply->abort();
    const QVariant statusAttr = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute);
    const QByteArray data = reply->readAll();
    const QString errorString = reply->errorString();
    reply->deleteLater();

    const QString what = describe(verb, path);
    if (!finished)
        co_return Error{QStringLiteral("timeout"),
                        QStringLiteral("userfluxd at %1:%2 did not answer %3 within %4 s")
                            .arg(ep.address)
                            .arg(ep.port)
                            .arg(what)
                            .arg(std::chrono::duration_cast<std::chrono::seconds>(m_timeout).count())};
    if (!statusAttr.isValid())
        co_return Error{QStringLiteral("unreachable"),
                        QStringLiteral("cannot reach userfluxd at %1:%2: %3").arg(ep.address).arg(ep.port).arg(errorString)};
    const int status = statusAttr.toInt();
    if (status == 401)
        co_return Error{QStringLiteral("unauthorized"),
                        QStringLiteral("userfluxd at %1:%2 refused the token (401): %3 is stale or belongs to another "
                                       "process")
                            .arg(ep.address)
                            .arg(ep.port)
                            .arg(endpointFilePath(m_runsRoot))};

    json answer = data.isEmpty() ? json::object()
                                 : json::parse(data.constData(), data.constData() + data.size(), nullptr, false);
    if (answer.is_discarded())
        co_return Error{QStringLiteral("bad_response"),
                        QStringLiteral("userfluxd answered %1 with HTTP %2 and a body that is not JSON").arg(what).arg(status)};
    if (status >= 200 && status < 300)
        co_return answer;

    QString code = answer.is_object() ? jsonString(answer, "error") : QString();
    if (code.isEmpty())
        code = QStringLiteral("http_%1").arg(status);
    QString message = answer.is_object() ? jsonString(answer, "message") : QString();
    if (code == QLatin1String("invalid_config") && answer.contains("errors") && answer["errors"].is_array()) {
        QStringList lines;
        for (const json &e : answer["errors"])
            lines << jsonString(e, "path") + QStringLiteral(": ") + jsonString(e, "message");
        message = lines.join(QLatin1Char('\n'));
    }
    if (message.isEmpty())
        message = QStringLiteral("userfluxd answered %1 with HTTP %2 (%3)").arg(what).arg(status).arg(code);
    co_return Error{code, message};
}

QCoro::Task<Result<json>> Client::health()
{
    return call("GET", QStringLiteral("/api/v1/health"));
}

QCoro::Task<Result<json>> Client::createRun(const json &config, const QString &configDir)
{
    return call("POST", QStringLiteral("/api/v1/runs"),
                json{{"config", config}, {"config_dir", QDir(configDir).absolutePath().toStdString()}});
}

QCoro::Task<Result<json>> Client::listRuns()
{
    return call("GET", QStringLiteral("/api/v1/runs"));
}

QCoro::Task<Result<json>> Client::getRun(const QString &runId)
{
    if (!isValidRunId(runId))
        return invalidIdTask(runId);
    return call("GET", QStringLiteral("/api/v1/runs/") + QString::fromLatin1(QUrl::toPercentEncoding(runId)));
}

QCoro::Task<Result<json>> Client::runSummary(const QString &runId)
{
    if (!isValidRunId(runId))
        return invalidIdTask(runId);
    return call("GET", QStringLiteral("/api/v1/runs/") + QString::fromLatin1(QUrl::toPercentEncoding(runId)) +
                           QStringLiteral("/summary"));
}

QCoro::Task<Result<json>> Client::stopRun(const QString &runId)
{
    if (!isValidRunId(runId))
        return invalidIdTask(runId);
    return call("POST", QStringLiteral("/api/v1/runs/") + QString::fromLatin1(QUrl::toPercentEncoding(runId)) +
                            QStringLiteral("/stop"),
                json::object());
}

QCoro::Task<Result<json>> Client::timeseries(const QString &runId, double sinceS)
{
    if (!isValidRunId(runId))
        return invalidIdTask(runId);
    return call("GET", QStringLiteral("/api/v1/runs/") + QString::fromLatin1(QUrl::toPercentEncoding(runId)) +
                           QStringLiteral("/timeseries?since=") + QString::number(sinceS, 'g', 12));
}

QCoro::Task<Result<json>> Client::plugins()
{
    return call("GET", QStringLiteral("/api/v1/plugins"));
}

} // namespace Userflux::Control
