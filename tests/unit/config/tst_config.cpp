// Config validation (every error at once, each with its path), load plans and stage interpolation, thresholds.
// Validation uses the real plugins of the build tree, loaded by the real plugin host.
#include <userflux/config.h>
#include <userflux/pluginhost.h>
#include <userflux/thresholds.h>

#include <QTemporaryDir>
#include <QTest>

using namespace Userflux;
using namespace std::chrono;
using nlohmann::json;

class TestConfig : public QObject {
    Q_OBJECT

    static json validConfig()
    {
        return json::parse(R"({
          "name": "t", "target": {"base_url": "http://127.0.0.1:8080", "timeout": "2s"},
          "load": {"model": "closed", "stages": [{"duration": "10s", "target": 10}, {"duration": "20s", "target": 10},
                                                 {"duration": "5s", "target": 0}], "graceful_stop": "3s"},
          "scenario": {"plugin": "steps", "think_time": "100ms..200ms", "steps": [
            {"name": "login", "method": "POST", "path": "/api/login", "json": {"user": "u{{vu}}"},
             "checks": [{"status": 200}], "extract": {"token": "json:/token"}},
            {"name": "items", "path": "/api/items", "headers": {"Authorization": "Bearer {{token}}"}}]},
          "sinks": [{"plugin": "file", "samples": true}],
          "thresholds": {"latency_ms": ["p95 < 500"], "error_rate": ["< 0.01"]}
        })");
    }

    static bool hasError(const ConfigErrors &errors, const QString &path, const QString &fragment)
    {
        for (const ConfigError &e : errors)
            if (e.path == path && e.message.contains(fragment, Qt::CaseInsensitive))
                return true;
        return false;
    }

    PluginHost *m_host = nullptr;

private Q_SLOTS:
    void initTestCase()
    {
        m_host = new PluginHost({QStringLiteral(USERFLUX_TEST_PLUGIN_DIR)});
    }
    void cleanupTestCase() { delete m_host; }

    void validConfigHasNoErrors()
    {
        const ConfigErrors errors = validateConfig(validConfig(), *m_host, QString());
        QVERIFY2(errors.isEmpty(), qPrintable(formatConfigErrors(errors)));
    }

    void everyErrorAtOnceWithItsPath()
    {
        json c = validConfig();
        c["target"]["base_url"] = "ftp://x";
        c["target"]["timout"] = "1s";                      // misspelt
        c["target"]["timeout"] = "30x";
        c["load"]["stages"][1]["target"] = -1;
        c["load"]["graceful_stop"] = 5;
        c["scenario"]["steps"][0]["method"] = "FETCH";
        c["scenario"]["steps"][1]["headers"]["Authorization"] = "Bearer {{tokn}}";
        c["scenario"]["steps"][1]["checks"] = json::array({json{{"status", 99}}});
        c["sinks"][0]["samles"] = true;
        c["thresholds"]["latency_ms"] = {"p95 <"};
        const ConfigErrors e = validateConfig(c, *m_host, QString());
        QVERIFY2(hasError(e, "target.base_url", "http://"), qPrintable(formatConfigErrors(e)));
        QVERIFY(hasError(e, "target.timout", "did you mean \"timeout\""));
        QVERIFY(hasError(e, "target.timeout", "\"30x\""));
        QVERIFY(hasError(e, "load.stages[1].target", "between 0"));
        QVERIFY(hasError(e, "load.graceful_stop", "must be a string"));
        QVERIFY(hasError(e, "scenario.steps[0].method", "\"FETCH\" is not one of"));
        QVERIFY(hasError(e, "scenario.steps[1].headers.Authorization", "{{tokn}} is not defined"));
        QVERIFY(hasError(e, "scenario.steps[1].checks[0].status", "status"));
        QVERIFY(hasError(e, "sinks[0].samles", "did you mean \"samples\""));
        QVERIFY(hasError(e, "thresholds[\"latency_ms\"][0]", "not an expression"));
        QCOMPARE(e.size(), 10);
    }

    void loadShapesAreExclusive()
    {
        json c = validConfig();
        c["load"] = {{"model", "closed"}, {"stages", json::array({{{"duration", "1s"}, {"target", 1}}})}, {"vus", 2}, {"iterations", 3}};
        QVERIFY(hasError(validateConfig(c, *m_host, QString()), "load", "not both"));
        c["load"] = {{"model", "closed"}};
        QVERIFY(hasError(validateConfig(c, *m_host, QString()), "load", "needs \"stages\""));
        c["load"] = {{"model", "closed"}, {"stages", json::array({{{"duration", "1s"}, {"target", 0}}})}};
        QVERIFY(hasError(validateConfig(c, *m_host, QString()), "load.stages", "nothing would run"));
        c["load"] = {{"model", "open"}, {"stages", json::array()}};
        QVERIFY(hasError(validateConfig(c, *m_host, QString()), "load.model", "open"));
    }

    void protocolRules()
    {
        json c = validConfig();
        c["target"]["http_version"] = "2";
        QVERIFY(hasError(validateConfig(c, *m_host, QString()), "target.http_version", "https://"));
        c["target"]["http_version"] = "3";
        QVERIFY(hasError(validateConfig(c, *m_host, QString()), "target.http_version", "is not one of"));
        c["target"]["http_version"] = "h2c";
        QVERIFY(validateConfig(c, *m_host, QString()).isEmpty());
        c["protocol"] = {{"plugin", "gopher"}};
        QVERIFY(hasError(validateConfig(c, *m_host, QString()), "protocol.plugin", "no protocol plugin \"gopher\""));
    }

    void dataFileIsReadAndColumnsAreVariables()
    {
        QTemporaryDir dir;
        QFile f(dir.filePath("users.csv"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("user,password\nalice,\"p,1\"\nbob,p2\n");
        f.close();
        json c = validConfig();
        c["scenario"]["data"] = {{"csv", "users.csv"}, {"mode", "per-vu"}};
        c["scenario"]["steps"][0]["json"] = {{"user", "{{row.user}}"}, {"password", "{{row.password}}"}};
        QVERIFY2(validateConfig(c, *m_host, dir.path()).isEmpty(), qPrintable(formatConfigErrors(validateConfig(c, *m_host, dir.path()))));
        c["scenario"]["steps"][0]["json"]["x"] = "{{row.missing}}";
        QVERIFY(hasError(validateConfig(c, *m_host, dir.path()), "scenario.steps[0].json", "{{row.missing}}"));
        c["scenario"]["data"]["csv"] = "../etc/passwd";
        QVERIFY(hasError(validateConfig(c, *m_host, dir.path()), "scenario.data.csv", "inside"));
        c["scenario"]["data"]["csv"] = "absent.csv";
        QVERIFY(hasError(validateConfig(c, *m_host, dir.path()), "scenario.data.csv", "cannot read"));
    }

    void readJsonFileNamesLineAndColumn()
    {
        QTemporaryDir dir;
        QFile f(dir.filePath("bad.json"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("{\n  \"name\": \"x\",\n  \"load\": }\n");
        f.close();
        auto r = readJsonFile(f.fileName());
        QVERIFY(!r);
        QCOMPARE(r.error().code, QStringLiteral("json"));
        QVERIFY2(r.error().message.contains(QStringLiteral("bad.json:3:")), qPrintable(r.error().message));
        QVERIFY(!readJsonFile(dir.filePath("none.json")));
    }

    void stagesInterpolateLinearly()
    {
        auto plan = parseLoadPlan(validConfig()["load"]);
        QVERIFY(plan);
        QCOMPARE(plan->model, LoadPlan::Model::ClosedStages);
        QCOMPARE(plan->maxVus(), 10);
        QCOMPARE(plan->plannedDuration(), duration_cast<microseconds>(seconds(35)));
        QCOMPARE(plan->gracefulStop, duration_cast<microseconds>(seconds(3)));
        QCOMPARE(plan->targetAt(seconds(0)), 0.0);            // ramps from 0
        QCOMPARE(plan->targetAt(milliseconds(2500)), 2.5);
        QCOMPARE(plan->targetAt(seconds(5)), 5.0);
        QCOMPARE(plan->targetAt(seconds(10)), 10.0);           // hold
        QCOMPARE(plan->targetAt(seconds(29)), 10.0);
        QCOMPARE(plan->targetAt(milliseconds(32500)), 5.0);    // ramp down
        QCOMPARE(plan->targetAt(seconds(35)), 0.0);
        QCOMPARE(plan->targetAt(seconds(99)), 0.0);
        // A zero-length stage jumps.
        auto jump = parseLoadPlan(json::parse(R"({"stages": [{"duration": "0s", "target": 7}, {"duration": "1s", "target": 7}]})"));
        QVERIFY(jump);
        QCOMPARE(jump->targetAt(seconds(0)), 7.0);
        auto iters = parseLoadPlan(json::parse(R"({"model": "closed", "vus": 2, "iterations": 50})"));
        QVERIFY(iters);
        QCOMPARE(iters->model, LoadPlan::Model::ClosedIterations);
        QCOMPARE(iters->maxVus(), 2);
        QCOMPARE(iters->iterations, 50);
    }

    void thresholdsParseAndEvaluate()
    {
        ConfigErrors errors;
        const auto ts = parseThresholds(json::parse(R"({
            "latency_ms": ["p95 < 500", "max <= 900"], "error_rate": ["< 0.01"],
            "latency_ms{endpoint=login}": [{"expr": "p99 < 100", "abort_on_fail": true, "delay": "10s"}],
            "server_timing_ms{service=orders}": ["p95 < 80"], "checks": ["rate > 0.99"], "throughput_rps": ["> 10"]})"), &errors);
        QVERIFY2(errors.isEmpty(), qPrintable(formatConfigErrors(errors)));
        QCOMPARE(int(ts.size()), 7);
        const json summary = json::parse(R"({
            "totals": {"ok": 990, "errors": 10, "error_rate": 0.01, "throughput_rps": 50.0},
            "latency_ms": {"count": 1000, "p95": 480.0, "max": 950.0},
            "endpoints": [{"name": "login", "requests": 10, "latency_ms": {"count": 10, "p99": 120.0}}],
            "server_timing": [{"service": "orders", "latency_ms": {"count": 3, "p95": 70.0}}],
            "checks": [{"passes": 995, "fails": 5}]})");
        QStringList verdicts;
        for (const Threshold &t : ts) {
            const auto r = evaluateThreshold(t, summary);
            verdicts << QStringLiteral("%1 %2 %3").arg(t.metric, t.expr, r.ok ? "ok" : "fail");
        }
        QVERIFY(verdicts.contains("latency_ms p95 < 500 ok"));
        QVERIFY(verdicts.contains("latency_ms max <= 900 fail"));
        QVERIFY(verdicts.contains("error_rate < 0.01 fail")); // 0.01 is not below 0.01
        QVERIFY(verdicts.contains("latency_ms{endpoint=login} p99 < 100 fail"));
        QVERIFY(verdicts.contains("server_timing_ms{service=orders} p95 < 80 ok"));
        QVERIFY(verdicts.contains("checks rate > 0.99 ok"));
        QVERIFY(verdicts.contains("throughput_rps > 10 ok"));
        QCOMPARE(ts[2].abortOnFail || ts[3].abortOnFail, true);
        // No data is a failure with no observed value, never a pass.
        const auto none = evaluateThreshold(ts[0], json::parse(R"({"totals": {"ok": 0, "errors": 0}})"));
        QVERIFY(!none.ok);
        QVERIFY(!none.observed.has_value());

        ConfigErrors bad;
        parseThresholds(json::parse(R"({"latncy_ms": ["p95 < 1"], "latency_ms": ["p42x < 1"], "server_timing_ms": ["p95 < 1"]})"), &bad);
        QCOMPARE(bad.size(), 3);
    }
};

QTEST_GUILESS_MAIN(TestConfig)
#include "tst_config.moc"
