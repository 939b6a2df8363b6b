#pragma once
// Private to the executor: a worker thread's state (its protocol client and its vUsers).
#include "userflux/executor.h"

#include <QNetworkCookieJar>
#include <QObject>
#include <QPointer>
#include <QTimer>

#include <random>

namespace Userflux {

class Worker;

// One vUser's context: what the scenario sees (IVuContext), plus the worker's bookkeeping.
class VuContext final : public IVuContext {
public:
    VuContext(Worker *worker, int vu);
    ~VuContext() override;

    int vu() const override { return m_vu; }
    qint64 iteration() const override { return m_iteration; }
    QCoro::Task<StepResponse> request(StepRequest request) override;
    QCoro::Task<> sleep(std::chrono::microseconds duration) override;
    bool stopping() const override { return m_hardStop; }
    void recordCheck(const QString &step, const QString &check, bool passed) override;
    void log(const QString &line) override;
    quint64 random() override { return m_rng(); }

    void hardStop();

    Worker *m_worker;
    int m_vu;
    quint64 m_serial = 0;
    qint64 m_iteration = 0;
    qint64 m_maxIterations = 0;     // 0: unbounded (stages)
    bool m_open = false;            // open model: runs one iteration at a time, when the executor says so
    MonoClock::time_point m_intended, m_iterationStart; // open model: when the current iteration was due / began
    qint64 m_intervalUs = 0;        // open model: the interval at which this vUser is expected to start iterations
    bool m_stopRequested = false;   // stop at the next iteration boundary
    bool m_hardStop = false;        // interrupt now
    quint64 m_inflight = 0;         // handle of the request in flight, 0 when none
    QPointer<QTimer> m_sleepTimer;
    QNetworkCookieJar m_cookies;    // per vUser, as a browser would keep them
    std::mt19937_64 m_rng;
    std::unique_ptr<IVuScript> m_script;
    QCoro::Task<> m_task;
};

class Worker : public QObject {
    Q_OBJECT
public:
    Worker(int index, const ExecutorSetup *setup, Executor *executor, MonoClock::time_point start);
    ~Worker() override;

    // Everything below runs on the worker's thread (the executor calls it with queued invocations).
    void init();
    void resetStart(MonoClock::time_point start) { m_start = start; }
    void activateVu(int vu, qint64 maxIterations);
    // Open model: adds an idle vUser to this worker's pool; startIteration() hands one iteration to an idle one.
    void createIdleVu(int vu);
    void startIteration(MonoClock::time_point intended, qint64 expectedIntervalUs);
    void requestStopVu(int vu);
    void hardStopVu(int vu);
    void hardStopAll();
    void flush(quint64 round, qint64 upTo, bool final);
    void shutdown();

    // Used by VuContext.
    RunStats &bucketFor(MonoClock::time_point t);
    void addSample(Sample &&s) { m_samples.push_back(std::move(s)); }
    double sinceStartS(MonoClock::time_point t) const
    {
        return std::chrono::duration<double>(t - m_start).count();
    }
    IProtocolClient *client() const { return m_client.get(); }
    const ExecutorSetup *setup() const { return m_setup; }
    void log(const QString &line);

    // Parsed target settings, shared by this worker's vUsers.
    QUrl m_baseUrl;
    HttpHeaders m_defaultHeaders;
    std::chrono::milliseconds m_timeout{30000};
    bool m_followRedirects = false;
    int m_maxRedirects = 10;

private:
    QCoro::Task<> runVu(VuContext *vu);
    QCoro::Task<> runOpenIteration(VuContext *vu);

    int m_index;
    const ExecutorSetup *m_setup;
    Executor *m_executor;
    MonoClock::time_point m_start;
    std::unique_ptr<IProtocolClient> m_client;
    std::map<quint64, std::unique_ptr<VuContext>> m_vus; // by serial: a vUser id may have a stopping twin
    std::map<int, VuContext *> m_current;               // the live (not hard-stopped) instance of each id
    std::vector<VuContext *> m_idle;                     // open model: pool vUsers with no iteration
    quint64 m_nextSerial = 1;
    std::map<qint64, RunStats> m_buckets; // by completion second since start
    std::vector<Sample> m_samples;
    int m_logBudget = 200; // scenario log lines per worker, so a broken script cannot flood logs.txt
};

} // namespace Userflux
