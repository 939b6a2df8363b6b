#pragma once
// The agent: runs one run from its run directory and writes the run contract there.
//
// Threading: lives on the main thread; the executor's workers run on their own threads.
#include <userflux/executor.h>
#include <userflux/pluginhost.h>
#include <userflux/summary.h>
#include <userflux/thresholds.h>

#include <QDateTime>
#include <QObject>
#include <QStringList>

#include <memory>
#include <vector>

class QTimer;

namespace Userflux {

// Exit codes of userflux-agent (the daemon records them in status.json).
enum AgentExit { AgentFinished = 0, AgentFailed = 1, AgentInvalidConfig = 2, AgentThresholdsFailed = 99, AgentAborted = 130 };

class Agent : public QObject {
    Q_OBJECT
public:
    Agent(QString runDir, QStringList pluginDirs, QObject *parent = nullptr);
    ~Agent() override;

    // Validates and starts the run. On failure it writes the final status itself and returns the exit code
    // (non-negative); on success it returns -1 and emits finished(exitCode) later.
    int start();
    // SIGINT/SIGTERM: the first asks for a graceful stop, the next interrupts at once.
    void stop();

Q_SIGNALS:
    void finished(int exitCode);

private:
    int failEarly(int code, const QString &message);
    SummaryInput summaryInput(bool final) const;
    nlohmann::json partialSummary() const;
    void writePartialSummary();
    void checkAbortThresholds();
    void finish();
    void writeStatus(const QString &state, int exitCode, const QString &message);
    void log(const QString &line);

    QString m_runDir;
    QString m_runId;
    QStringList m_pluginDirs;
    std::unique_ptr<PluginHost> m_host;
    nlohmann::json m_config;
    std::vector<std::unique_ptr<ISink>> m_sinks;
    std::unique_ptr<Executor> m_executor;
    std::shared_ptr<IScenario> m_scenario;
    std::vector<Threshold> m_thresholds;
    QTimer *m_partialTimer = nullptr;
    QTimer *m_abortTimer = nullptr;
    QString m_abortedBy; // the threshold that stopped the run (abort_on_fail)
    QDateTime m_startedAt;
    int m_stopSignals = 0;
};

} // namespace Userflux
