#pragma once
// The executor: runs a load plan with vUsers spread over worker threads, and merges their statistics.
//
// Threading: an Executor lives on the control thread (the agent's main thread). It starts one QThread per
// worker; each worker owns its protocol client and its vUsers (coroutines) and records into its own RunStats.
// Once per second the control thread asks every worker for its finished per-second deltas, merges them into
// the totals and emits one time-series bucket. Callbacks below run on the control thread.
#include "userflux/config.h"
#include "userflux/plugin.h"
#include "userflux/runstats.h"

#include <QObject>

class QThread;
class QTimer;

#include <functional>
#include <map>
#include <memory>
#include <vector>

namespace Userflux {

class Worker;

struct ExecutorSetup {
    nlohmann::json config;                 // the validated config
    LoadPlan plan;
    IProtocolPlugin *protocol = nullptr;   // owned by the plugin host, outlives the executor
    std::shared_ptr<IScenario> scenario;
    bool collectSamples = false;
};

class Executor : public QObject {
    Q_OBJECT
public:
    explicit Executor(ExecutorSetup setup, QObject *parent = nullptr);
    ~Executor() override;

    std::function<void(const nlohmann::json &bucket)> onBucket;       // one per second, in order
    std::function<void(std::vector<Sample> &&batch)> onSamples;       // when collectSamples
    std::function<void(const QString &line)> onLog;
    std::function<void()> onFinished;                                 // every vUser has stopped; totals final

    // Starts the workers and the plan. Returns at once; the run proceeds on the event loop.
    void start();
    // Ends the run early: vUsers stop at their next iteration boundary and requests still running when
    // graceful_stop expires are interrupted. A second call (or `hard`) interrupts at once.
    void stop(bool hard = false);
    bool stopRequested() const { return m_stopRequested; }
    // True when the run was stopped before its plan ended (a stop after the plan is a normal end).
    bool aborted() const { return m_stopRequested && !m_stoppedAfterPlan; }

    const RunStats &totals() const { return m_totals; }
    const LoadPlan &plan() const { return m_setup.plan; }
    int workerCount() const { return int(m_workers.size()); }
    int activeVus() const { return m_running; }
    int vusMax() const { return m_vusMax; }
    qint64 retries() const { return m_retries; }
    MonoClock::time_point startTime() const { return m_start; }
    MonoClock::time_point endTime() const { return m_end; }
    double elapsedS() const;
    std::vector<nlohmann::json> timeseries() const { return m_timeseries; }

private:
    friend class Worker;
    struct WorkerReport {
        quint64 round = 0;
        int worker = 0;
        std::map<qint64, RunStats> buckets;
        std::vector<Sample> samples;
        qint64 retries = 0;
    };
    void tick();
    void setTarget(int target);
    void requestFlush(bool final);
    void onReport(std::shared_ptr<WorkerReport> report);
    void onVuActivated(bool created);
    void scheduleArrivals();
    void dispatchArrival(std::chrono::microseconds due);
    void onOpenIterationDone(int worker);
    void scheduleHardStop();
    void onVuExited(int vu);
    void maybeFinish();
    void noteVus();
    void hardStopVu(int vu, quint64 generation);
    void beginFinish();
    void finish();
    void emitBuckets(qint64 upTo, bool final);

    ExecutorSetup m_setup;
    std::vector<Worker *> m_workers;
    std::vector<QThread *> m_threads;
    QTimer *m_ticker = nullptr;
    MonoClock::time_point m_start, m_end;
    int m_target = 0;      // vUsers 1..m_target should be active
    int m_running = 0;     // vUsers whose coroutine has not returned
    int m_pendingActivations = 0;
    int m_vusMax = 0;
    std::map<int, quint64> m_stopGeneration; // per vUser id: bumped at every activation and stop request
    bool m_stopRequested = false;
    bool m_hardStopped = false;
    bool m_planDone = false;
    bool m_stoppedAfterPlan = false;
    bool m_finishing = false;
    bool m_finished = false;
    qint64 m_nextBucket = 0;        // first second index not yet emitted
    quint64 m_flushRound = 0;
    int m_pendingReplies = 0;
    bool m_finalFlush = false;
    qint64 m_flushUpTo = 0;
    std::map<qint64, RunStats> m_pendingBuckets;
    std::map<qint64, int> m_bucketVus;
    RunStats m_totals;
    std::vector<qint64> m_workerRetries;
    // Open model
    QTimer *m_scheduler = nullptr;
    qint64 m_nextArrival = 0;          // index of the next iteration due
    std::vector<int> m_freeSlots;      // idle pool vUsers per worker
    size_t m_nextWorker = 0;           // round robin over workers with a free vUser
    bool m_hardStopScheduled = false;
    qint64 m_retries = 0;
    std::vector<nlohmann::json> m_timeseries;
};

} // namespace Userflux
