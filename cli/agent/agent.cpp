#include "agent.h"

#include <userflux/atomicfile.h>
#include <userflux/config.h>
#include <userflux/duration.h>
#include <userflux/runid.h>
#include <userflux/summary.h>

#include <QDir>
#include <QFileInfo>
#include <QTimer>

#include <algorithm>
#include <cstdio>

namespace Userflux {

using nlohmann::json;

Agent::Agent(QString runDir, QStringList pluginDirs, QObject *parent)
    : QObject(parent)
    , m_runDir(QDir(runDir).absolutePath())
    , m_pluginDirs(std::move(pluginDirs))
{
    m_runId = QFileInfo(m_runDir).fileName();
}

Agent::~Agent()
{
    // The executor's workers use plugin objects: they must go before the host unloads anything.
    m_executor.reset();
    m_sinks.clear();
    m_scenario.reset();
}

void Agent::log(const QString &line)
{
    // One line per event on stdout; the daemon timestamps it into logs.txt.
    const QByteArray bytes = line.toUtf8() + '\n';
    std::fwrite(bytes.constData(), 1, size_t(bytes.size()), stdout);
    std::fflush(stdout);
}

void Agent::writeStatus(const QString &state, int exitCode, const QString &message)
{
    const QString path = QDir(m_runDir).filePath(QStringLiteral("status.json"));
    json status = json::object();
    if (auto existing = readJsonFile(path); existing && existing->is_object())
        status = *existing; // keep the daemon's created_at, started_at, agent_pid
    status["schema"] = "userflux.status/1";
    status["run_id"] = m_runId.toStdString();
    status["state"] = state.toStdString();
    if (!status.contains("created_at") || status["created_at"].is_null())
        status["created_at"] = rfc3339(m_startedAt.isValid() ? m_startedAt : QDateTime::currentDateTimeUtc()).toStdString();
    if (!status.contains("started_at") || status["started_at"].is_null())
        status["started_at"] = m_startedAt.isValid() ? json(rfc3339(m_startedAt).toStdString()) : json(nullptr);
    status["ended_at"] = rfc3339(QDateTime::currentDateTimeUtc()).toStdString();
    if (!status.contains("agent_pid") || status["agent_pid"].is_null())
        status["agent_pid"] = qint64(QCoreApplication::applicationPid());
    status["message"] = message.toStdString();
    status["exit_code"] = exitCode;
    if (auto r = writeFileAtomically(path, QByteArray::fromStdString(status.dump(2)) + '\n'); !r)
        log(QStringLiteral("error: ") + r.error().message);
}

int Agent::failEarly(int code, const QString &message)
{
    log(QStringLiteral("error: ") + message);
    if (QDir(m_runDir).exists())
        writeStatus(QStringLiteral("failed"), code, message);
    return code;
}

int Agent::start()
{
    if (!isValidRunId(m_runId))
        return failEarly(AgentInvalidConfig, QStringLiteral("the run folder name \"%1\" is not a valid run id").arg(m_runId));
    if (!QDir(m_runDir).exists())
        return failEarly(AgentInvalidConfig, QStringLiteral("run directory %1 does not exist").arg(m_runDir));
    auto config = readJsonFile(QDir(m_runDir).filePath(QStringLiteral("config.json")));
    if (!config)
        return failEarly(AgentInvalidConfig, config.error().message);
    m_config = std::move(*config);

    m_host = std::make_unique<PluginHost>(m_pluginDirs);
    const ConfigErrors errors = validateConfig(m_config, *m_host, m_runDir);
    if (!errors.isEmpty())
        return failEarly(AgentInvalidConfig, QStringLiteral("invalid config:\n") + formatConfigErrors(errors));

    auto plan = parseLoadPlan(m_config.at("load"));
    if (!plan)
        return failEarly(AgentInvalidConfig, plan.error().message);
    ConfigErrors thresholdErrors;
    if (m_config.contains("thresholds"))
        m_thresholds = parseThresholds(m_config["thresholds"], &thresholdErrors);

    const json &scenarioConfig = m_config.at("scenario");
    const QString scenarioId = QString::fromStdString(scenarioConfig.value("plugin", std::string("steps")));
    auto scenarioPlugin = m_host->scenario(scenarioId);
    if (!scenarioPlugin)
        return failEarly(AgentFailed, scenarioPlugin.error().message);
    auto scenario = (*scenarioPlugin)->create(ScenarioOptions{m_config, m_runDir});
    if (!scenario)
        return failEarly(AgentInvalidConfig, scenario.error().message);
    m_scenario = *scenario;

    const QString protocolId = m_config.contains("protocol")
        ? QString::fromStdString(m_config["protocol"].value("plugin", std::string("http")))
        : QStringLiteral("http");
    auto protocol = m_host->protocol(protocolId);
    if (!protocol)
        return failEarly(AgentFailed, protocol.error().message);

    // Sinks: as configured; the file sink always writes the run contract, so it is added when absent.
    json sinks = m_config.value("sinks", json::array());
    bool hasFile = false;
    for (const auto &s : sinks)
        hasFile = hasFile || s.value("plugin", std::string()) == "file";
    if (!hasFile)
        sinks.push_back({{"plugin", "file"}});
    bool collectSamples = false;
    for (const auto &s : sinks) {
        auto plugin = m_host->sink(QString::fromStdString(s.value("plugin", std::string())));
        if (!plugin)
            return failEarly(AgentFailed, plugin.error().message);
        auto sink = (*plugin)->create();
        if (auto r = sink->open(SinkContext{m_runId, m_runDir, m_config, s}); !r)
            return failEarly(AgentFailed, r.error().message);
        collectSamples = collectSamples || sink->wantsSamples();
        m_sinks.push_back(std::move(sink));
    }

    ExecutorSetup setup;
    setup.config = m_config;
    setup.plan = *plan;
    setup.protocol = *protocol;
    setup.scenario = m_scenario;
    setup.collectSamples = collectSamples;
    m_executor = std::make_unique<Executor>(std::move(setup));
    m_executor->onLog = [this](const QString &line) { log(line); };
    m_executor->onBucket = [this](const json &bucket) {
        for (auto &s : m_sinks)
            s->timeseries(bucket);
    };
    m_executor->onSamples = [this](std::vector<Sample> &&batch) {
        for (auto &s : m_sinks)
            if (s->wantsSamples())
                s->samples(batch);
    };
    m_executor->onFinished = [this] { finish(); };

    m_startedAt = QDateTime::currentDateTimeUtc();
    const LoadPlan &p = *plan;
    log(QStringLiteral("run %1: %2, %3 → %4, up to %5 vUsers%6")
            .arg(m_runId,
                 QString::fromStdString(m_config.value("name", std::string("unnamed"))),
                 QString::fromStdString(m_config["target"]["base_url"].get<std::string>()),
                 p.model == LoadPlan::Model::ClosedIterations ? QStringLiteral("%1 iterations per vUser").arg(p.iterations)
                 : p.model == LoadPlan::Model::Open ? QStringLiteral("open model, stages over %1").arg(formatDuration(p.plannedDuration()))
                                                    : QStringLiteral("stages over %1").arg(formatDuration(p.plannedDuration())))
            .arg(p.maxVus())
            .arg(collectSamples ? QStringLiteral(", samples on") : QString()));
    m_executor->start();

    // A first (empty) partial summary at once: a run that dies in its first seconds still leaves one.
    writePartialSummary();
    m_partialTimer = new QTimer(this);
    m_partialTimer->setInterval(5000);
    connect(m_partialTimer, &QTimer::timeout, this, &Agent::writePartialSummary);
    m_partialTimer->start();
    if (std::any_of(m_thresholds.cbegin(), m_thresholds.cend(), [](const Threshold &t) { return t.abortOnFail; })) {
        m_abortTimer = new QTimer(this);
        m_abortTimer->setInterval(1000);
        connect(m_abortTimer, &QTimer::timeout, this, &Agent::checkAbortThresholds);
        m_abortTimer->start();
    }
    return -1;
}

void Agent::stop()
{
    if (!m_executor) {
        Q_EMIT finished(AgentAborted);
        return;
    }
    ++m_stopSignals;
    log(m_stopSignals == 1 ? QStringLiteral("signal received: stopping gracefully (again to stop at once)")
                           : QStringLiteral("signal received again: stopping at once"));
    m_executor->stop(m_stopSignals > 1);
}

SummaryInput Agent::summaryInput(bool final) const
{
    SummaryInput in;
    in.runId = m_runId;
    in.final = final;
    in.startedAt = m_startedAt;
    in.durationS = m_executor->elapsedS();
    in.configName = QString::fromStdString(m_config.value("name", std::string()));
    in.model = m_executor->plan().model == LoadPlan::Model::Open ? QStringLiteral("open") : QStringLiteral("closed");
    in.totals = &m_executor->totals();
    in.endpointOrder = m_scenario->endpoints();
    in.vusMax = m_executor->vusMax();
    in.retries = m_executor->retries();
    return in;
}

nlohmann::json Agent::partialSummary() const
{
    SummaryInput in = summaryInput(false);
    in.state = QStringLiteral("running");
    return buildSummary(in);
}

void Agent::writePartialSummary()
{
    const json summary = partialSummary();
    for (auto &s : m_sinks)
        s->summary(summary, false);
}

void Agent::checkAbortThresholds()
{
    // abort_on_fail thresholds are watched once per second on the merged results so far, after their delay.
    if (!m_abortedBy.isEmpty() || m_executor->stopRequested())
        return;
    const double elapsed = m_executor->elapsedS();
    json summary;
    for (const Threshold &t : m_thresholds) {
        if (!t.abortOnFail || elapsed < std::chrono::duration<double>(t.delay).count())
            continue;
        if (summary.is_null())
            summary = partialSummary();
        const ThresholdResult r = evaluateThreshold(t, summary);
        if (r.ok || !r.observed)
            continue; // no data yet is not a reason to abort
        m_abortedBy = QStringLiteral("%1: %2 (observed %3)").arg(t.metric, t.expr).arg(*r.observed);
        log(QStringLiteral("threshold failed with abort_on_fail: %1; stopping the run").arg(m_abortedBy));
        m_executor->stop();
        return;
    }
}

void Agent::finish()
{
    m_partialTimer->stop();
    if (m_abortTimer)
        m_abortTimer->stop();
    const bool aborted = m_executor->aborted();
    SummaryInput in = summaryInput(true);
    in.state = aborted ? QStringLiteral("aborted") : QStringLiteral("finished");
    in.endedAt = QDateTime::currentDateTimeUtc();
    in.timeseries = m_executor->timeseries();
    in.thresholds = &m_thresholds;
    const json summary = buildSummary(in);
    for (auto &s : m_sinks)
        s->summary(summary, true);
    QStringList sinkErrors;
    for (auto &s : m_sinks)
        if (auto r = s->close(); !r)
            sinkErrors << r.error().message;

    QStringList failed;
    for (const auto &t : summary["thresholds"])
        if (!t.value("ok", false))
            failed << QStringLiteral("%1: %2 (observed %3)")
                          .arg(QString::fromStdString(t["metric"].get<std::string>()),
                               QString::fromStdString(t["expr"].get<std::string>()),
                               t["observed"].is_null() ? QStringLiteral("no data") : QString::number(t["observed"].get<double>()));

    const auto &totals = summary["totals"];
    log(QStringLiteral("%1 requests: %2 ok, %3 errors, %4 interrupted; %5 req/s")
            .arg(totals["requests"].get<qint64>())
            .arg(totals["ok"].get<qint64>())
            .arg(totals["errors"].get<qint64>())
            .arg(totals["interrupted"].get<qint64>())
            .arg(totals["throughput_rps"].get<double>()));
    int code = AgentFinished;
    QString state = in.state;
    QString message;
    if (!sinkErrors.isEmpty()) {
        code = AgentFailed;
        state = QStringLiteral("failed");
        message = QStringLiteral("writing results failed: ") + sinkErrors.join(QStringLiteral("; "));
    } else if (!m_abortedBy.isEmpty()) {
        code = AgentThresholdsFailed;
        message = QStringLiteral("aborted by a threshold with abort_on_fail: ") + m_abortedBy;
    } else if (aborted) {
        code = AgentAborted;
        message = QStringLiteral("stopped before the end of the plan");
    } else if (!failed.isEmpty()) {
        code = AgentThresholdsFailed;
        message = QStringLiteral("thresholds failed: ") + failed.join(QStringLiteral("; "));
    } else {
        message = QStringLiteral("completed");
    }
    if (!failed.isEmpty())
        log(QStringLiteral("thresholds failed: ") + failed.join(QStringLiteral("; ")));
    writeStatus(state, code, message);
    log(QStringLiteral("final state: %1 (exit %2)").arg(state).arg(code));
    Q_EMIT finished(code);
}

} // namespace Userflux
