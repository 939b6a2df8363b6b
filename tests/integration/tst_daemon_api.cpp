// userfluxd as a real process on a temporary runs root: the token on every call, the endpoint file, run id
// checks, config validation errors, one daemon per root, agent supervision (with a fake agent script whose
// behaviour the config's name chooses), and a clean exit on SIGTERM. Every wait is bounded.
#include "rawhttpclient.h"

#include "userflux/config.h"
#include "userflux/controlclient.h"
#include "userflux/pluginhost.h"
#include "userflux/runid.h"
#include "userflux/runstore.h"

#include <QDeadlineTimer>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QtTest>

#include <QCoroTask>

#include <sys/stat.h>

using namespace Userflux;
using json = nlohmann::json;

namespace {

const QString BinDir = QStringLiteral(USERFLUX_BIN_DIR);

struct Reply {
    int status = 0;           // 0: no answer
    json body;
    QByteArray raw;
    QList<QPair<QByteArray, QByteArray>> headers;
};

Reply http(quint16 port, const QByteArray &method, const QByteArray &target, const QByteArray &authorization,
           const QByteArray &body = {})
{
    Test::RawHttpClient client;
    if (!client.connectTo(port, 5000))
        return {};
    QList<QPair<QByteArray, QByteArray>> headers;
    if (!authorization.isNull())
        headers.append(qMakePair(QByteArray("Authorization"), authorization));
    if (!body.isEmpty())
        headers.append(qMakePair(QByteArray("Content-Type"), QByteArray("application/json")));
    client.sendRequest(method, target, headers, body);
    if (!client.waitForResponses(1, 15000))
        return {};
    const Test::RawHttpClient::Response r = client.responses().constFirst();
    Reply out;
    out.status = r.status;
    out.raw = r.body;
    out.headers = r.headers;
    out.body = json::parse(r.body.constData(), r.body.constData() + r.body.size(), nullptr, false);
    return out;
}

// QCoro::waitFor needs a default-constructible result; Result<T> is not.
template <typename T>
QCoro::Task<> storeInto(QCoro::Task<Result<T>> task, std::optional<Result<T>> *out)
{
    out->emplace(co_await std::move(task));
}

template <typename T>
Result<T> await(QCoro::Task<Result<T>> &&task)
{
    std::optional<Result<T>> out;
    QCoro::waitFor(storeInto(std::move(task), &out));
    return std::move(*out);
}

QByteArray bearer(const QByteArray &token)
{
    return "Bearer " + token;
}

// A userfluxd child process on a runs root.
class DaemonProcess {
public:
    QProcess process;
    QString root;
    QByteArray token;
    quint16 port = 0;

    bool start(const QString &runsRoot, const QStringList &extra = {})
    {
        root = runsRoot;
        process.setProgram(BinDir + QStringLiteral("/userfluxd"));
        process.setArguments(QStringList{QStringLiteral("--runs-dir"), root} + extra);
        process.start();
        if (!process.waitForStarted(5000))
            return false;
        QDeadlineTimer deadline(10000);
        while (!deadline.hasExpired()) {
            Result<Control::Endpoint> ep = Control::readEndpointFile(root);
            if (ep && ep->pid == process.processId()) {
                token = ep->token.toLatin1();
                port = ep->port;
                return true;
            }
            if (process.state() == QProcess::NotRunning)
                return false;
            QTest::qWait(50);
        }
        return false;
    }

    Reply get(const QByteArray &target) const { return http(port, "GET", target, bearer(token)); }
    Reply post(const QByteArray &target, const json &body) const
    {
        return http(port, "POST", target, bearer(token), QByteArray::fromStdString(body.dump()));
    }

    // Polls GET /api/v1/runs/{id} until the state is terminal; returns the last answer.
    json waitForEnd(const QString &runId, int timeoutMs = 20000) const
    {
        QDeadlineTimer deadline(timeoutMs);
        json last;
        while (!deadline.hasExpired()) {
            Reply r = get("/api/v1/runs/" + runId.toLatin1());
            if (r.status == 200) {
                last = r.body;
                const std::string state = last["status"].value("state", "");
                if (state == "finished" || state == "failed" || state == "aborted")
                    return last;
            }
            QTest::qWait(100);
        }
        return last;
    }

    bool stop(int timeoutMs = 20000)
    {
        if (process.state() == QProcess::NotRunning)
            return true;
        process.terminate();
        return process.waitForFinished(timeoutMs);
    }

    ~DaemonProcess()
    {
        if (process.state() != QProcess::NotRunning) {
            process.kill();
            process.waitForFinished(5000);
        }
    }
};

// The fake agent: "--run-dir DIR" like the real one; the config's name picks what it does.
const char *FakeAgent = R"SH(#!/bin/sh
dir="$2"
echo "fake agent for $dir"
echo "to stderr" >&2
status() { # state exit_code message; keeps created_at and started_at as the daemon wrote them
  created=$(sed -n 's/.*"created_at": *"\([^"]*\)".*/\1/p' "$dir/status.json")
  started=$(sed -n 's/.*"started_at": *"\([^"]*\)".*/\1/p' "$dir/status.json")
  printf '{"schema":"userflux.status/1","run_id":"%s","state":"%s","created_at":"%s","started_at":"%s","ended_at":"2030-01-01T00:00:01.000Z","agent_pid":%s,"message":"%s","exit_code":%s}\n' \
    "$(basename "$dir")" "$1" "$created" "$started" "$$" "$3" "$2" > "$dir/status.json.tmp" && mv "$dir/status.json.tmp" "$dir/status.json"
}
case "$(cat "$dir/config.json")" in
  *'"name": "crash"'*)
    kill -9 $$ ;;
  *'"name": "finish"'*)
    sleep 0.3
    printf '%s\n' '{"t_s":0,"duration_s":1,"vus":1,"requests":3,"ok":2,"errors":1,"throughput_rps":3,"latency_ms":{"p50":1,"p90":2,"p95":3,"p99":4,"max":5}}' \
                  '{"t_s":1,"duration_s":1,"vus":2,"requests":5,"ok":5,"errors":0,"throughput_rps":5,"latency_ms":{"p50":1,"p90":2,"p95":6,"p99":7,"max":8}}' >> "$dir/timeseries.ndjson"
    printf '%s' '{"t_s":2,"dura' >> "$dir/timeseries.ndjson"
    status finished 0 "fake run done"
    exit 0 ;;
  *'"name": "sleep"'*)
    trap 'kill $child 2>/dev/null; echo "got SIGTERM"; status aborted 130 "stopped by request"; exit 130' TERM
    sleep 30 &
    child=$!
    wait $child
    exit 0 ;;
  *)
    exit 3 ;;
esac
)SH";

json goodConfig(const QString &name)
{
    return json{{"name", name.toStdString()},
                {"target", {{"base_url", "http://127.0.0.1:9"}}},
                {"load", {{"model", "closed"}, {"vus", 1}, {"iterations", 1}, {"graceful_stop", "2s"}}},
                {"scenario", {{"plugin", "steps"}, {"steps", json::array({json{{"name", "home"}, {"method", "GET"}, {"path", "/"}}})}}},
                {"protocol", {{"plugin", "http"}}},
                {"sinks", json::array({json{{"plugin", "file"}}})}};
}

QString readText(const QString &path)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? QString::fromUtf8(f.readAll()) : QString();
}

} // namespace

class TestDaemonApi : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY2(QFileInfo(BinDir + QStringLiteral("/userfluxd")).isExecutable(), qPrintable(BinDir));
        QVERIFY(m_tmp.isValid());
        m_root = m_tmp.filePath(QStringLiteral("runs"));
        m_configDir = m_tmp.filePath(QStringLiteral("configs"));
        QVERIFY(QDir().mkpath(m_configDir));
        m_fakeAgent = m_tmp.filePath(QStringLiteral("fake-agent.sh"));
        QFile script(m_fakeAgent);
        QVERIFY(script.open(QIODevice::WriteOnly));
        script.write(FakeAgent);
        script.close();
        QVERIFY(script.setPermissions(QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner));

        // Runs need a config that validates: with the real plugins of the build tree.
        PluginHost host;
        const ConfigErrors errors = validateConfig(goodConfig(QStringLiteral("probe")), host, m_configDir);
        m_pluginsAvailable = errors.isEmpty();
        if (!m_pluginsAvailable)
            qWarning("run tests will be skipped: %s", qPrintable(formatConfigErrors(errors)));

        QVERIFY(m_daemon.start(m_root, {QStringLiteral("--agent-program"), m_fakeAgent}));
    }

    void cleanupTestCase()
    {
        QVERIFY(m_daemon.stop());
    }

    void missingOrWrongTokenGets401_data()
    {
        QTest::addColumn<QByteArray>("method");
        QTest::addColumn<QByteArray>("target");
        QTest::addColumn<QByteArray>("authorization");
        const QByteArray good = m_daemon.token;
        QByteArray wrong = good;
        wrong[wrong.size() - 1] = wrong.endsWith('0') ? '1' : '0';
        QTest::newRow("none") << QByteArray("GET") << QByteArray("/api/v1/health") << QByteArray();
        QTest::newRow("wrong token") << QByteArray("GET") << QByteArray("/api/v1/health") << bearer(wrong);
        QTest::newRow("prefix of token") << QByteArray("GET") << QByteArray("/api/v1/health") << bearer(good.left(10));
        QTest::newRow("token plus") << QByteArray("GET") << QByteArray("/api/v1/health") << bearer(good + "0");
        QTest::newRow("empty bearer") << QByteArray("GET") << QByteArray("/api/v1/health") << QByteArray("Bearer ");
        QTest::newRow("basic scheme") << QByteArray("GET") << QByteArray("/api/v1/health") << ("Basic " + good);
        QTest::newRow("bare token") << QByteArray("GET") << QByteArray("/api/v1/health") << good;
        QTest::newRow("runs list") << QByteArray("GET") << QByteArray("/api/v1/runs") << bearer(wrong);
        QTest::newRow("create run") << QByteArray("POST") << QByteArray("/api/v1/runs") << QByteArray();
        QTest::newRow("stop") << QByteArray("POST") << QByteArray("/api/v1/runs/x/stop") << QByteArray();
        QTest::newRow("unknown path") << QByteArray("GET") << QByteArray("/nothing/here") << QByteArray();
    }

    void missingOrWrongTokenGets401()
    {
        QFETCH(QByteArray, method);
        QFETCH(QByteArray, target);
        QFETCH(QByteArray, authorization);
        const Reply r = http(m_daemon.port, method, target, authorization, method == "POST" ? QByteArray("{}") : QByteArray());
        QCOMPARE(r.status, 401);
        QVERIFY(r.body == json({{"error", "unauthorized"}})); // and nothing else
    }

    void healthWithToken()
    {
        const Reply r = m_daemon.get("/api/v1/health");
        QCOMPARE(r.status, 200);
        QCOMPARE(r.body["status"], "ok");
        QCOMPARE(QString::fromStdString(r.body["runs_root"].get<std::string>()), m_root);
        QVERIFY(r.body["version"].is_string());
        QVERIFY(r.body["active_runs"].is_number_integer());
        // The scheme is case-insensitive.
        QCOMPARE(http(m_daemon.port, "GET", "/api/v1/health", "bearer " + m_daemon.token).status, 200);
    }

    void endpointFileIsPrivate()
    {
        const QString path = Control::endpointFilePath(m_root);
        struct stat st = {};
        QCOMPARE(::stat(QFile::encodeName(path).constData(), &st), 0);
        QCOMPARE(st.st_mode & 0777, mode_t(0600));
        const json ep = json::parse(readText(path).toStdString());
        for (const char *key : {"address", "port", "token", "pid", "version"})
            QVERIFY2(ep.contains(key), key);
        QCOMPARE(ep["address"], "127.0.0.1");
        QCOMPARE(ep["pid"].get<qint64>(), m_daemon.process.processId());
        QVERIFY(QRegularExpression(QStringLiteral("^[0-9a-f]{64}$"))
                    .match(QString::fromStdString(ep["token"].get<std::string>()))
                    .hasMatch());
        // No temporary file left beside it.
        for (const QString &name : QDir(m_root).entryList(QDir::Files | QDir::Hidden))
            QVERIFY2(!name.contains(QStringLiteral(".tmp")), qPrintable(name));
    }

    void invalidRunIdGets400_data()
    {
        QTest::addColumn<QByteArray>("method");
        QTest::addColumn<QByteArray>("target");
        QTest::newRow("dotdot") << QByteArray("GET") << QByteArray("/api/v1/runs/..");
        QTest::newRow("encoded dotdot") << QByteArray("GET") << QByteArray("/api/v1/runs/%2E%2E");
        QTest::newRow("encoded slash") << QByteArray("GET") << QByteArray("/api/v1/runs/a%2Fb");
        QTest::newRow("hidden") << QByteArray("GET") << QByteArray("/api/v1/runs/.hidden");
        QTest::newRow("65 chars") << QByteArray("GET") << ("/api/v1/runs/" + QByteArray(65, 'a'));
        QTest::newRow("space") << QByteArray("GET") << QByteArray("/api/v1/runs/a%20b");
        QTest::newRow("timeseries") << QByteArray("GET") << QByteArray("/api/v1/runs/../timeseries");
        QTest::newRow("summary") << QByteArray("GET") << QByteArray("/api/v1/runs/.x/summary");
        QTest::newRow("stop") << QByteArray("POST") << QByteArray("/api/v1/runs/%2E%2E/stop");
    }

    void invalidRunIdGets400()
    {
        QFETCH(QByteArray, method);
        QFETCH(QByteArray, target);
        const Reply r = http(m_daemon.port, method, target, bearer(m_daemon.token), method == "POST" ? QByteArray("{}") : QByteArray());
        QCOMPARE(r.status, 400);
        QCOMPARE(r.body["error"], "invalid_run_id");
    }

    void unknownRunGets404()
    {
        QCOMPARE(m_daemon.get("/api/v1/runs/20990101-000000-beef").status, 404);
        QCOMPARE(m_daemon.get("/api/v1/runs/20990101-000000-beef").body["error"], "not_found");
        QCOMPARE(m_daemon.get("/api/v1/runs/20990101-000000-beef/timeseries?since=0").status, 404);
        QCOMPARE(m_daemon.get("/api/v1/runs/20990101-000000-beef/summary").status, 404);
        QCOMPARE(m_daemon.post("/api/v1/runs/20990101-000000-beef/stop", json::object()).status, 404);
        QCOMPARE(m_daemon.get("/api/v1/nothing").status, 404);
        QCOMPARE(http(m_daemon.port, "DELETE", "/api/v1/runs", bearer(m_daemon.token)).status, 405);
    }

    void invalidConfigListsEveryError()
    {
        const json body{{"config", {{"bogus", 1}, {"name", 5}, {"load", {{"model", "nope"}}}}},
                        {"config_dir", m_configDir.toStdString()}};
        const Reply r = m_daemon.post("/api/v1/runs", body);
        QCOMPARE(r.status, 400);
        QCOMPARE(r.body["error"], "invalid_config");
        QVERIFY(r.body["errors"].is_array());
        QVERIFY2(r.body["errors"].size() >= 3, r.raw.constData());
        QStringList paths;
        for (const json &e : r.body["errors"]) {
            QVERIFY(e["path"].is_string());
            QVERIFY(e["message"].is_string());
            QVERIFY(!e["message"].get<std::string>().empty());
            paths << QString::fromStdString(e["path"].get<std::string>());
        }
        for (const QString &expected : {QStringLiteral("bogus"), QStringLiteral("name"), QStringLiteral("load.model")})
            QVERIFY2(paths.contains(expected), qPrintable(paths.join(QLatin1Char(','))));
        QVERIFY(RunStore(m_root).runIds().isEmpty()); // nothing created
    }

    void badCreateRequests()
    {
        QCOMPARE(http(m_daemon.port, "POST", "/api/v1/runs", bearer(m_daemon.token), "not json").status, 400);
        QCOMPARE(m_daemon.post("/api/v1/runs", json{{"config", 5}, {"config_dir", m_configDir.toStdString()}}).status, 400);
        const Reply relative = m_daemon.post("/api/v1/runs", json{{"config", goodConfig(QStringLiteral("x"))}, {"config_dir", "relative/dir"}});
        QCOMPARE(relative.status, 400);
        QCOMPARE(relative.body["error"], "bad_request");
        QVERIFY(RunStore(m_root).runIds().isEmpty());
    }

    void controlClient()
    {
        Control::Client client(m_root);
        Result<void> connected = await(client.connectToDaemon());
        QVERIFY2(connected.ok(), qPrintable(connected.ok() ? QString() : connected.error().message));
        QCOMPARE(client.endpoint().port, m_daemon.port);
        Result<json> health = await(client.health());
        QVERIFY(health.ok());
        QCOMPARE((*health)["status"], "ok");
        Result<json> runs = await(client.listRuns());
        QVERIFY(runs.ok());
        QVERIFY((*runs)["runs"].is_array());
        Result<json> unknown = await(client.getRun(QStringLiteral("20990101-000000-beef")));
        QVERIFY(!unknown.ok());
        QCOMPARE(unknown.error().code, QStringLiteral("not_found"));
        Result<json> invalid = await(client.getRun(QStringLiteral("..")));
        QCOMPARE(invalid.error().code, QStringLiteral("invalid_run_id"));
        Result<json> bad = await(client.createRun(json{{"bogus", true}}, m_configDir));
        QVERIFY(!bad.ok());
        QCOMPARE(bad.error().code, QStringLiteral("invalid_config"));
        QVERIFY(Control::Client::configErrorLines(bad.error()).size() >= 2);
        QCOMPARE(Control::Client::configErrorLines(bad.error()).filter(QRegularExpression(QStringLiteral("^bogus: "))).size(), 1);
    }

    void controlClientErrors()
    {
        // An endpoint file with a wrong token for the live daemon: 401 becomes "unauthorized".
        const QString otherRoot = m_tmp.filePath(QStringLiteral("other-root"));
        QVERIFY(QDir().mkpath(otherRoot));
        QFile f(Control::endpointFilePath(otherRoot));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(QByteArray::fromStdString(json{{"address", "127.0.0.1"}, {"port", m_daemon.port}, {"token", std::string(64, 'f')},
                                              {"pid", 1}, {"version", "x"}}.dump()));
        f.close();
        Control::Client client(otherRoot);
        Result<void> r = await(client.connectToDaemon());
        QVERIFY(!r.ok());
        QCOMPARE(r.error().code, QStringLiteral("unauthorized"));

        // A stale endpoint (nothing listens there): "unreachable", quickly.
        const QString staleRoot = m_tmp.filePath(QStringLiteral("stale-root"));
        QVERIFY(QDir().mkpath(staleRoot));
        QFile g(Control::endpointFilePath(staleRoot));
        QVERIFY(g.open(QIODevice::WriteOnly));
        g.write(R"({"address":"127.0.0.1","port":1,"token":"abc","pid":1,"version":"x"})");
        g.close();
        Control::Client stale(staleRoot);
        Result<void> s = await(stale.connectToDaemon());
        QVERIFY(!s.ok());
        QCOMPARE(s.error().code, QStringLiteral("unreachable"));

        // No endpoint file at all.
        Control::Client none(m_tmp.filePath(QStringLiteral("no-root")));
        QCOMPARE(await(none.connectToDaemon()).error().code, QStringLiteral("no_daemon"));
    }

    void secondDaemonOnSameRootExits3()
    {
        const QByteArray before = readText(Control::endpointFilePath(m_root)).toUtf8();
        QProcess second;
        second.start(BinDir + QStringLiteral("/userfluxd"), {QStringLiteral("--runs-dir"), m_root});
        QVERIFY(second.waitForFinished(10000));
        QCOMPARE(second.exitStatus(), QProcess::NormalExit);
        QCOMPARE(second.exitCode(), 3);
        const QString err = QString::fromUtf8(second.readAllStandardError()).trimmed();
        QVERIFY2(!err.contains(QLatin1Char('\n')), qPrintable(err)); // one line
        QVERIFY2(err.contains(QStringLiteral("already serves")), qPrintable(err));
        QCOMPARE(readText(Control::endpointFilePath(m_root)).toUtf8(), before); // untouched
        QCOMPARE(m_daemon.get("/api/v1/health").status, 200);
    }

    void usageErrorsExit2()
    {
        QProcess p;
        p.start(BinDir + QStringLiteral("/userfluxd"),
                {QStringLiteral("--runs-dir"), m_tmp.filePath(QStringLiteral("r3")), QStringLiteral("--listen"),
                 QStringLiteral("0.0.0.0")});
        QVERIFY(p.waitForFinished(10000));
        QCOMPARE(p.exitCode(), 2);
        QVERIFY(QString::fromUtf8(p.readAllStandardError()).contains(QStringLiteral("--allow-remote")));
        p.start(BinDir + QStringLiteral("/userfluxd"), {QStringLiteral("--idle-exit"), QStringLiteral("soon")});
        QVERIFY(p.waitForFinished(10000));
        QCOMPARE(p.exitCode(), 2);
    }

    void agentExitWithoutStatusIsFailed()
    {
        if (!m_pluginsAvailable)
            QSKIP("the steps/http/file plugins are not built");
        const Reply created = m_daemon.post("/api/v1/runs", json{{"config", goodConfig(QStringLiteral("exit3"))},
                                                                 {"config_dir", m_configDir.toStdString()}});
        QCOMPARE(created.status, 201);
        const QString id = QString::fromStdString(created.body["run_id"].get<std::string>());
        QVERIFY(isValidRunId(id));
        const json end = m_daemon.waitForEnd(id);
        QCOMPARE(end["status"]["state"], "failed");
        QCOMPARE(end["status"]["exit_code"], 3);
        QCOMPARE(end["status"]["message"], "agent exited with code 3 without writing a final status");
        QVERIFY(end["status"]["started_at"].is_string());
        QVERIFY(end["status"]["ended_at"].is_string());
        QVERIFY(end["status"]["agent_pid"].is_number_integer());

        const QString logs = readText(RunStore(m_root).runDir(id) + QStringLiteral("/logs.txt"));
        for (const QString &expected : {QStringLiteral("[daemon] run created"), QStringLiteral("[daemon] agent started (pid"),
                                        QStringLiteral("[agent] fake agent for"), QStringLiteral("[agent] to stderr"),
                                        QStringLiteral("[daemon] agent exited with code 3")})
            QVERIFY2(logs.contains(expected), qPrintable(logs));
        static const QRegularExpression line(QStringLiteral("^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z \\[(daemon|agent)\\] "));
        for (const QString &l : logs.split(QLatin1Char('\n'), Qt::SkipEmptyParts))
            QVERIFY2(line.match(l).hasMatch(), qPrintable(l));
    }

    void agentCrashIsFailed()
    {
        if (!m_pluginsAvailable)
            QSKIP("the steps/http/file plugins are not built");
        const Reply created = m_daemon.post("/api/v1/runs", json{{"config", goodConfig(QStringLiteral("crash"))},
                                                                 {"config_dir", m_configDir.toStdString()}});
        QCOMPARE(created.status, 201);
        const QString id = QString::fromStdString(created.body["run_id"].get<std::string>());
        const json end = m_daemon.waitForEnd(id);
        QCOMPARE(end["status"]["state"], "failed");
        QCOMPARE(end["status"]["message"], "agent crashed (signal 9)");
        QVERIFY(end["status"]["exit_code"].is_null());
    }

    void agentFinalStatusIsKeptAndLiveFigures()
    {
        if (!m_pluginsAvailable)
            QSKIP("the steps/http/file plugins are not built");
        const Reply created = m_daemon.post("/api/v1/runs", json{{"config", goodConfig(QStringLiteral("finish"))},
                                                                 {"config_dir", m_configDir.toStdString()}});
        QCOMPARE(created.status, 201);
        QCOMPARE(created.body["state"], "running");
        const QString id = QString::fromStdString(created.body["run_id"].get<std::string>());
        const json end = m_daemon.waitForEnd(id);
        QCOMPARE(end["status"]["state"], "finished");
        QCOMPARE(end["status"]["message"], "fake run done");
        QCOMPARE(end["name"], "finish");
        const json live = end["live"];
        QCOMPARE(live["requests"], 8);
        QCOMPARE(live["ok"], 7);
        QCOMPARE(live["errors"], 1);
        QCOMPARE(live["vus"], 2);
        QCOMPARE(live["rps"].get<double>(), 5.0);
        QCOMPARE(live["p95_ms"].get<double>(), 6.0);
        QCOMPARE(live["elapsed_s"].get<double>(), 2.0);
        QCOMPARE(live["error_rate"].get<double>(), 1.0 / 8.0);

        const Reply since = m_daemon.get("/api/v1/runs/" + id.toLatin1() + "/timeseries?since=1");
        QCOMPARE(since.status, 200);
        QCOMPARE(since.body["buckets"].size(), size_t(1));
        QCOMPARE(since.body["buckets"][0]["t_s"], 1);
        QCOMPARE(m_daemon.get("/api/v1/runs/" + id.toLatin1() + "/timeseries").body["buckets"].size(), size_t(2));
        QCOMPARE(m_daemon.get("/api/v1/runs/" + id.toLatin1() + "/timeseries?since=x").status, 400);
        QCOMPARE(m_daemon.get("/api/v1/runs/" + id.toLatin1() + "/summary").status, 404); // the fake wrote none

        // Listed, newest first, with its name.
        const Reply list = m_daemon.get("/api/v1/runs");
        QCOMPARE(list.status, 200);
        QVERIFY(!list.body["runs"].empty());
        QVERIFY2(list.body["runs"][0]["run_id"] == id.toStdString(), list.raw.constData());
        QCOMPARE(list.body["runs"][0]["name"], "finish");
        QCOMPARE(list.body["runs"][0]["state"], "finished");
        QVERIFY(list.body["runs"][0]["created_at"].is_string());
        // A finished run cannot be stopped.
        QCOMPARE(m_daemon.post("/api/v1/runs/" + id.toLatin1() + "/stop", json::object()).status, 409);
    }

    void stopRun()
    {
        if (!m_pluginsAvailable)
            QSKIP("the steps/http/file plugins are not built");
        const Reply created = m_daemon.post("/api/v1/runs", json{{"config", goodConfig(QStringLiteral("sleep"))},
                                                                 {"config_dir", m_configDir.toStdString()}});
        QCOMPARE(created.status, 201);
        const QString id = QString::fromStdString(created.body["run_id"].get<std::string>());
        QCOMPARE(m_daemon.get("/api/v1/health").body["active_runs"], 1);
        QCOMPARE(m_daemon.get("/api/v1/runs/" + id.toLatin1()).body["status"]["state"], "running");
        QTest::qWait(200); // let the shell install its trap
        const Reply stop = m_daemon.post("/api/v1/runs/" + id.toLatin1() + "/stop", json::object());
        QCOMPARE(stop.status, 202);
        QCOMPARE(stop.body["state"], "stopping");
        const json end = m_daemon.waitForEnd(id);
        QCOMPARE(end["status"]["state"], "aborted");
        QCOMPARE(end["status"]["exit_code"], 130);
        QCOMPARE(m_daemon.get("/api/v1/health").body["active_runs"], 0);
        const QString logs = readText(RunStore(m_root).runDir(id) + QStringLiteral("/logs.txt"));
        QVERIFY2(logs.contains(QStringLiteral("stop requested")), qPrintable(logs));
        QVERIFY2(logs.contains(QStringLiteral("[agent] got SIGTERM")), qPrintable(logs));
    }

    void dataFilesAreCopiedAndEscapesRefused()
    {
        if (!m_pluginsAvailable)
            QSKIP("the steps/http/file plugins are not built");
        QFile csv(m_configDir + QStringLiteral("/users.csv"));
        QVERIFY(csv.open(QIODevice::WriteOnly));
        csv.write("user,password\nalice,secret\n");
        csv.close();
        json config = goodConfig(QStringLiteral("exit3"));
        config["scenario"]["data"] = json{{"csv", "users.csv"}};
        const Reply created = m_daemon.post("/api/v1/runs", json{{"config", config}, {"config_dir", m_configDir.toStdString()}});
        QVERIFY2(created.status == 201, created.raw.constData());
        const QString id = QString::fromStdString(created.body["run_id"].get<std::string>());
        QCOMPARE(readText(RunStore(m_root).runDir(id) + QStringLiteral("/users.csv")), QStringLiteral("user,password\nalice,secret\n"));
        m_daemon.waitForEnd(id);

        QFile outside(m_tmp.filePath(QStringLiteral("outside.csv")));
        QVERIFY(outside.open(QIODevice::WriteOnly));
        outside.write("user\nx\n");
        outside.close();
        const int before = RunStore(m_root).runIds().size();
        config["scenario"]["data"] = json{{"csv", "../outside.csv"}};
        const Reply refused = m_daemon.post("/api/v1/runs", json{{"config", config}, {"config_dir", m_configDir.toStdString()}});
        QCOMPARE(refused.status, 400);
        QCOMPARE(RunStore(m_root).runIds().size(), before);
    }

    void agentThatCannotStart()
    {
        if (!m_pluginsAvailable)
            QSKIP("the steps/http/file plugins are not built");
        DaemonProcess d;
        const QString root = m_tmp.filePath(QStringLiteral("no-agent-root"));
        QVERIFY(d.start(root, {QStringLiteral("--agent-program"), m_tmp.filePath(QStringLiteral("no-such-agent"))}));
        const Reply created = d.post("/api/v1/runs", json{{"config", goodConfig(QStringLiteral("x"))}, {"config_dir", m_configDir.toStdString()}});
        QCOMPARE(created.status, 201);
        QCOMPARE(created.body["state"], "failed");
        const QString id = QString::fromStdString(created.body["run_id"].get<std::string>());
        const json status = d.get("/api/v1/runs/" + id.toLatin1()).body["status"];
        QCOMPARE(status["state"], "failed");
        QVERIFY2(QString::fromStdString(status["message"].get<std::string>()).startsWith(QStringLiteral("agent failed to start: ")),
                 status.dump().c_str());
        QVERIFY(status["ended_at"].is_string());
        QVERIFY(d.stop());
    }

    void sigtermStopsActiveRunsAndCleansUp()
    {
        if (!m_pluginsAvailable)
            QSKIP("the steps/http/file plugins are not built");
        DaemonProcess d;
        const QString root = m_tmp.filePath(QStringLiteral("sigterm-root"));
        QVERIFY(d.start(root, {QStringLiteral("--agent-program"), m_fakeAgent}));
        const Reply created = d.post("/api/v1/runs", json{{"config", goodConfig(QStringLiteral("sleep"))}, {"config_dir", m_configDir.toStdString()}});
        QCOMPARE(created.status, 201);
        const QString id = QString::fromStdString(created.body["run_id"].get<std::string>());
        QTest::qWait(200);
        QVERIFY(d.stop(20000));
        QCOMPARE(d.process.exitStatus(), QProcess::NormalExit);
        QCOMPARE(d.process.exitCode(), 0);
        QVERIFY(!QFile::exists(Control::endpointFilePath(root)));
        Result<json> status = RunStore(root).readStatus(id);
        QVERIFY(status.ok());
        QCOMPARE((*status)["state"], "aborted");
    }

    void sigtermExitsCleanly()
    {
        DaemonProcess d;
        const QString root = m_tmp.filePath(QStringLiteral("clean-root"));
        QVERIFY(d.start(root));
        QVERIFY(QFile::exists(Control::endpointFilePath(root)));
        QVERIFY(d.stop(10000));
        QCOMPARE(d.process.exitStatus(), QProcess::NormalExit);
        QCOMPARE(d.process.exitCode(), 0);
        QVERIFY(!QFile::exists(Control::endpointFilePath(root)));
        // The root can be served again right away.
        DaemonProcess again;
        QVERIFY(again.start(root));
        QVERIFY(again.stop(10000));
    }

    void idleExit()
    {
        DaemonProcess d;
        const QString root = m_tmp.filePath(QStringLiteral("idle-root"));
        QVERIFY(d.start(root, {QStringLiteral("--idle-exit"), QStringLiteral("1s")}));
        QVERIFY(d.process.waitForFinished(8000));
        QCOMPARE(d.process.exitCode(), 0);
        QVERIFY(!QFile::exists(Control::endpointFilePath(root)));
    }

private:
    QTemporaryDir m_tmp;
    QString m_root;
    QString m_configDir;
    QString m_fakeAgent;
    bool m_pluginsAvailable = false;
    DaemonProcess m_daemon;
};

QTEST_GUILESS_MAIN(TestDaemonApi)
#include "tst_daemon_api.moc"
