// RunStore: the runs root on disk — run creation, status read/write, listing, id checks, data-file copies,
// the live record (timeseries.ndjson) and logs.txt.
#include "userflux/runid.h"
#include "userflux/runstore.h"

#include <QDir>
#include <QFile>
#include <QRegularExpression>
#include <QSet>
#include <QTemporaryDir>
#include <QtTest>

using namespace Userflux;
using json = nlohmann::json;

namespace {

json minimalConfig()
{
    return json{{"name", "unit"},
                {"target", {{"base_url", "http://127.0.0.1:9"}}},
                {"load", {{"model", "closed"}, {"vus", 1}, {"iterations", 1}}},
                {"scenario", {{"plugin", "steps"}, {"steps", json::array()}}}};
}

void writeText(const QString &path, const QByteArray &text)
{
    QDir().mkpath(QFileInfo(path).absolutePath());
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(text);
}

QByteArray readText(const QString &path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return f.readAll();
}

json readJson(const QString &path)
{
    return json::parse(readText(path).toStdString());
}

const QRegularExpression &rfc3339Ms()
{
    static const QRegularExpression re(QStringLiteral("^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z$"));
    return re;
}

QStringList invalidIds()
{
    return {QStringLiteral(".."), QStringLiteral("."), QStringLiteral("a/b"), QString(), QString(65, QLatin1Char('a')),
            QStringLiteral(".hidden"), QStringLiteral("../escape"), QStringLiteral("a b"), QStringLiteral("-dash")};
}

} // namespace

class TestRunStore : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void init()
    {
        m_dir = std::make_unique<QTemporaryDir>();
        QVERIFY(m_dir->isValid());
        m_root = m_dir->filePath(QStringLiteral("runs"));
        m_configDir = m_dir->filePath(QStringLiteral("cfg"));
        QVERIFY(QDir().mkpath(m_configDir));
    }

    void resolveRoot()
    {
        const QByteArray saved = qgetenv("USERFLUX_RUNS_DIR");
        qunsetenv("USERFLUX_RUNS_DIR");
        QCOMPARE(RunStore::resolveRoot(QString()), QDir::cleanPath(QDir::currentPath() + QStringLiteral("/runs")));
        QCOMPARE(RunStore::resolveRoot(QStringLiteral("x/../y")), QDir::cleanPath(QDir::currentPath() + QStringLiteral("/y")));
        QCOMPARE(RunStore::resolveRoot(QStringLiteral("/abs/root/")), QStringLiteral("/abs/root"));
        qputenv("USERFLUX_RUNS_DIR", "/from/env");
        QCOMPARE(RunStore::resolveRoot(QString()), QStringLiteral("/from/env"));
        QCOMPARE(RunStore::resolveRoot(QStringLiteral("/cli/wins")), QStringLiteral("/cli/wins"));
        if (saved.isNull())
            qunsetenv("USERFLUX_RUNS_DIR");
        else
            qputenv("USERFLUX_RUNS_DIR", saved);
    }

    void createWritesConfigAndStatus()
    {
        RunStore store(m_root);
        Result<QString> id = store.createRun(minimalConfig(), m_configDir, {});
        QVERIFY2(id.ok(), qPrintable(id.ok() ? QString() : id.error().message));
        QVERIFY(isValidRunId(*id));
        QVERIFY(store.exists(*id));
        QCOMPARE(store.runDir(*id), m_root + QLatin1Char('/') + *id);

        const json config = readJson(store.runDir(*id) + QStringLiteral("/config.json"));
        QCOMPARE(config["schema"], "userflux.config/1");
        QCOMPARE(config["name"], "unit");

        Result<json> status = store.readStatus(*id);
        QVERIFY(status.ok());
        const json &s = *status;
        QCOMPARE(s["schema"], "userflux.status/1");
        QCOMPARE(s["run_id"], id->toStdString());
        QCOMPARE(s["state"], "created");
        QVERIFY(rfc3339Ms().match(QString::fromStdString(s["created_at"].get<std::string>())).hasMatch());
        QVERIFY(s["started_at"].is_null());
        QVERIFY(s["ended_at"].is_null());
        QVERIFY(s["agent_pid"].is_null());
        QVERIFY(s["exit_code"].is_null());
        QCOMPARE(s["message"], "");
    }

    void createKeepsGivenSchema()
    {
        RunStore store(m_root);
        json config = minimalConfig();
        config["schema"] = "userflux.config/1";
        Result<QString> id = store.createRun(config, m_configDir, {});
        QVERIFY(id.ok());
        QCOMPARE(readJson(store.runDir(*id) + QStringLiteral("/config.json")), config);
    }

    void createIdsAreUnique()
    {
        RunStore store(m_root);
        QSet<QString> ids;
        for (int i = 0; i < 40; ++i) {
            Result<QString> id = store.createRun(minimalConfig(), m_configDir, {});
            QVERIFY(id.ok());
            ids.insert(*id);
        }
        QCOMPARE(ids.size(), 40);
        QCOMPARE(store.runIds().size(), 40);
    }

    void dataFilesAreCopied()
    {
        writeText(m_configDir + QStringLiteral("/users.csv"), "user,password\na,b\n");
        writeText(m_configDir + QStringLiteral("/data/more.csv"), "x\n1\n");
        RunStore store(m_root);
        Result<QString> id = store.createRun(minimalConfig(), m_configDir,
                                             {QStringLiteral("users.csv"), QStringLiteral("./data/more.csv"),
                                              QStringLiteral("users.csv")});
        QVERIFY2(id.ok(), qPrintable(id.ok() ? QString() : id.error().message));
        QCOMPARE(readText(store.runDir(*id) + QStringLiteral("/users.csv")), QByteArray("user,password\na,b\n"));
        QCOMPARE(readText(store.runDir(*id) + QStringLiteral("/data/more.csv")), QByteArray("x\n1\n"));
    }

    void dataFileEscapesAreRefused_data()
    {
        QTest::addColumn<QString>("name");
        QTest::newRow("absolute") << QStringLiteral("/etc/passwd");
        QTest::newRow("parent") << QStringLiteral("../secret.csv");
        QTest::newRow("deep parent") << QStringLiteral("data/../../secret.csv");
        QTest::newRow("inner parent") << QStringLiteral("data/../users.csv");
        QTest::newRow("dotdot") << QStringLiteral("..");
        QTest::newRow("empty") << QString();
        QTest::newRow("dot") << QStringLiteral(".");
        QTest::newRow("reserved status") << QStringLiteral("status.json");
        QTest::newRow("reserved config") << QStringLiteral("./config.json");
        QTest::newRow("missing") << QStringLiteral("nope.csv");
        QTest::newRow("folder") << QStringLiteral("data");
    }

    void dataFileEscapesAreRefused()
    {
        QFETCH(QString, name);
        writeText(m_dir->filePath(QStringLiteral("secret.csv")), "secret\n");
        writeText(m_configDir + QStringLiteral("/users.csv"), "user\n");
        writeText(m_configDir + QStringLiteral("/data/x.csv"), "x\n");
        RunStore store(m_root);
        Result<QString> id = store.createRun(minimalConfig(), m_configDir, {QStringLiteral("users.csv"), name});
        QVERIFY(!id.ok());
        QCOMPARE(id.error().code, QStringLiteral("invalid_data_file"));
        QVERIFY(!id.error().message.isEmpty());
        QVERIFY(store.runIds().isEmpty()); // nothing left behind
    }

    void invalidIdsAreRefused_data()
    {
        QTest::addColumn<QString>("id");
        for (const QString &id : invalidIds())
            QTest::newRow(qPrintable(id.isEmpty() ? QStringLiteral("(empty)") : id.left(20))) << id;
    }

    void invalidIdsAreRefused()
    {
        QFETCH(QString, id);
        QVERIFY(!isValidRunId(id));
        RunStore store(m_root);
        QVERIFY(QDir().mkpath(m_root + QStringLiteral("/sub")));
        QVERIFY(store.runDir(id).isEmpty());
        QVERIFY(!store.exists(id));

        Result<json> status = store.readStatus(id);
        QVERIFY(!status.ok());
        QCOMPARE(status.error().code, QStringLiteral("invalid_run_id"));
        Result<void> write = store.writeStatus(id, json{{"state", "x"}});
        QVERIFY(!write.ok());
        QCOMPARE(write.error().code, QStringLiteral("invalid_run_id"));
        QCOMPARE(store.readSummary(id).error().code, QStringLiteral("invalid_run_id"));
        QCOMPARE(store.readConfig(id).error().code, QStringLiteral("invalid_run_id"));
        QCOMPARE(store.readTimeseries(id).error().code, QStringLiteral("invalid_run_id"));
        QCOMPARE(store.appendLog(id, QStringLiteral("daemon"), QStringLiteral("x")).error().code,
                 QStringLiteral("invalid_run_id"));
        // Nothing was written anywhere near the root.
        QVERIFY(!QFile::exists(m_dir->filePath(QStringLiteral("escape/status.json"))));
        QVERIFY(!QFile::exists(m_root + QStringLiteral("/status.json")));
        QVERIFY(!QFile::exists(m_dir->filePath(QStringLiteral("status.json"))));
    }

    void validIdBoundaries()
    {
        QVERIFY(isValidRunId(QString(64, QLatin1Char('a'))));
        QVERIFY(isValidRunId(QStringLiteral("20261203-180102-4f2a")));
        QVERIFY(isValidRunId(QStringLiteral("a.b_c-d")));
    }

    void statusRoundTripIsAtomic()
    {
        RunStore store(m_root);
        Result<QString> id = store.createRun(minimalConfig(), m_configDir, {});
        QVERIFY(id.ok());
        for (int i = 0; i < 20; ++i) {
            json s = *store.readStatus(*id);
            s["state"] = "running";
            s["agent_pid"] = 1000 + i;
            QVERIFY(store.writeStatus(*id, s).ok());
        }
        QCOMPARE((*store.readStatus(*id))["agent_pid"], 1019);
        QCOMPARE((*store.readStatus(*id))["state"], "running");
        // The atomic writes left no temporary file behind.
        const QStringList entries = QDir(store.runDir(*id)).entryList(QDir::Files | QDir::Hidden | QDir::NoDotAndDotDot);
        QCOMPARE(entries, (QStringList{QStringLiteral("config.json"), QStringLiteral("status.json")}));
    }

    void unknownRun()
    {
        RunStore store(m_root);
        const QString id = QStringLiteral("20990101-000000-beef");
        QCOMPARE(store.readStatus(id).error().code, QStringLiteral("not_found"));
        QCOMPARE(store.writeStatus(id, json::object()).error().code, QStringLiteral("not_found"));
        QVERIFY(!QDir(m_root + QLatin1Char('/') + id).exists()); // writeStatus does not create runs
    }

    void runIdsListsValidFoldersSorted()
    {
        QVERIFY(QDir().mkpath(m_root));
        for (const char *name : {"b-run", "a-run", "c.run", ".hidden", "bad name", "..."})
            QVERIFY(QDir(m_root).mkdir(QString::fromLatin1(name)));
        writeText(m_root + QStringLiteral("/.userfluxd.json"), "{}");
        writeText(m_root + QStringLiteral("/plainfile"), "x");
        RunStore store(m_root);
        QCOMPARE(store.runIds(), (QStringList{QStringLiteral("a-run"), QStringLiteral("b-run"), QStringLiteral("c.run")}));
        QVERIFY(RunStore(m_dir->filePath(QStringLiteral("missing"))).runIds().isEmpty());
    }

    void summaryAndTimeseries()
    {
        RunStore store(m_root);
        Result<QString> id = store.createRun(minimalConfig(), m_configDir, {});
        QVERIFY(id.ok());
        QCOMPARE(store.readSummary(*id).error().code, QStringLiteral("not_found"));
        Result<std::vector<json>> none = store.readTimeseries(*id);
        QVERIFY(none.ok());
        QVERIFY(none->empty());
        QCOMPARE(LiveFigures::fromBuckets(*none).toJson()["p95_ms"], nullptr);

        writeText(store.runDir(*id) + QStringLiteral("/summary.json"), R"({"schema":"userflux.summary/1","final":true})");
        QCOMPARE((*store.readSummary(*id))["final"], true);

        const QString ts = store.timeseriesPath(*id);
        writeText(ts,
                  R"({"t_s":0,"duration_s":1,"vus":2,"requests":10,"ok":9,"errors":1,"throughput_rps":10,"latency_ms":{"p50":1,"p90":2,"p95":3,"p99":4,"max":5}})" "\n"
                  R"({"t_s":1,"duration_s":1,"vus":4,"requests":20,"ok":19,"errors":1,"throughput_rps":20,"latency_ms":{"p50":1,"p90":2,"p95":7.5,"p99":8,"max":9}})" "\n"
                  R"({"t_s":2,"duration_s":0.5,"vus":4,"requests":1)");
        Result<std::vector<json>> buckets = store.readTimeseries(*id);
        QVERIFY(buckets.ok());
        QCOMPARE(buckets->size(), size_t(2)); // the torn last line is dropped
        const LiveFigures live = LiveFigures::fromBuckets(*buckets);
        QCOMPARE(live.requests, 30);
        QCOMPARE(live.ok, 28);
        QCOMPARE(live.errors, 2);
        QCOMPARE(live.vus, 4);
        QCOMPARE(live.rps, 20.0);
        QCOMPARE(live.p95Ms, 7.5);
        QCOMPARE(live.elapsedS, 2.0);
        QCOMPARE(live.errorRate, 2.0 / 30.0);
        const json j = live.toJson();
        for (const char *key : {"elapsed_s", "vus", "rps", "p95_ms", "requests", "ok", "errors", "error_rate"})
            QVERIFY2(j.contains(key), key);
    }

    void timeseriesReaderIsIncremental()
    {
        const QString path = m_dir->filePath(QStringLiteral("timeseries.ndjson"));
        TimeseriesReader reader(path);
        QVERIFY(reader.refresh().ok()); // no file yet: no buckets, no error
        QVERIFY(reader.buckets().empty());

        QFile f(path);
        QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Append | QIODevice::Unbuffered));
        f.write(R"({"t_s":0,"requests":1})" "\n" R"({"t_s":1,"req)");
        QVERIFY(reader.refresh().ok());
        QCOMPARE(reader.buckets().size(), size_t(1));
        f.write(R"(uests":2})" "\n" "not json\n" "\n" R"([1,2])" "\n");
        QVERIFY(reader.refresh().ok());
        QCOMPARE(reader.buckets().size(), size_t(2));
        QCOMPARE(reader.buckets()[1]["requests"], 2);
        QCOMPARE(reader.skippedLines(), 2);
        f.close();

        // Replaced by a shorter file: starts over.
        writeText(path, R"({"t_s":9})" "\n");
        QVERIFY(reader.refresh().ok());
        QCOMPARE(reader.buckets().size(), size_t(1));
        QCOMPARE(reader.buckets()[0]["t_s"], 9);
    }

    void appendLogLines()
    {
        RunStore store(m_root);
        Result<QString> id = store.createRun(minimalConfig(), m_configDir, {});
        QVERIFY(id.ok());
        QVERIFY(store.appendLog(*id, QStringLiteral("daemon"), QStringLiteral("run created")).ok());
        QVERIFY(store.appendLog(*id, QStringLiteral("agent"), QStringLiteral("one\r\ntwo")).ok());
        const QStringList lines = QString::fromUtf8(readText(store.runDir(*id) + QStringLiteral("/logs.txt")))
                                      .split(QLatin1Char('\n'), Qt::SkipEmptyParts);
        QCOMPARE(lines.size(), 3);
        static const QRegularExpression re(
            QStringLiteral("^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z \\[(daemon|agent)\\] (.*)$"));
        const QStringList texts{QStringLiteral("run created"), QStringLiteral("one"), QStringLiteral("two")};
        for (int i = 0; i < 3; ++i) {
            const QRegularExpressionMatch m = re.match(lines[i]);
            QVERIFY2(m.hasMatch(), qPrintable(lines[i]));
            QCOMPARE(m.captured(2), texts[i]);
        }
    }

    void terminalStates()
    {
        QVERIFY(RunStore::isTerminalState(QStringLiteral("finished")));
        QVERIFY(RunStore::isTerminalState(QStringLiteral("failed")));
        QVERIFY(RunStore::isTerminalState(QStringLiteral("aborted")));
        QVERIFY(!RunStore::isTerminalState(QStringLiteral("running")));
        QVERIFY(!RunStore::isTerminalState(QStringLiteral("created")));
    }

private:
    std::unique_ptr<QTemporaryDir> m_dir;
    QString m_root;
    QString m_configDir;
};

QTEST_GUILESS_MAIN(TestRunStore)
#include "tst_runstore.moc"
