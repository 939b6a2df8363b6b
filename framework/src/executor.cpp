#include "userflux/executor.h"

#include "executor_p.h"

#include "userflux/duration.h"

#include <QCoroSignal>
#include <QCoroTimer>
#include <QNetworkCookie>
#include <QThread>
#include <QTimer>

#include <algorithm>
#include <cmath>
#include <coroutine>

namespace Userflux {

using namespace std::chrono;
using nlohmann::json;

namespace {

qint64 toUs(MonoClock::duration d)
{
    return duration_cast<microseconds>(d).count();
}

// co_await on a protocol client's send(): resumes the coroutine from the client's completion callback (which
// the SDK guarantees is never called from inside send()).
struct SendAwaiter {
    IProtocolClient *client;
    ProtocolRequest request;
    quint64 *handle;
    ProtocolResponse result;

    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h)
    {
        *handle = client->send(std::move(request), [this, h](ProtocolResponse &&r) {
            result = std::move(r);
            *handle = 0;
            h.resume();
        });
    }
    ProtocolResponse await_resume() { return std::move(result); }
};

bool isRedirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------
VuContext::VuContext(Worker *worker, int vu)
    : m_worker(worker)
    , m_vu(vu)
    , m_rng(0x9E3779B97F4A7C15ull * quint64(vu) + 0x632BE59BD9B4E019ull)
{
}

VuContext::~VuContext() = default;

void VuContext::hardStop()
{
    m_stopRequested = true;
    m_hardStop = true;
    if (m_inflight)
        m_worker->client()->cancel(m_inflight);
    if (m_sleepTimer)
        m_sleepTimer->start(0);
}

void VuContext::recordCheck(const QString &step, const QString &check, bool passed)
{
    m_worker->bucketFor(MonoClock::now()).recordCheck(step, check, passed);
}

void VuContext::log(const QString &line)
{
    m_worker->log(QStringLiteral("vu %1: %2").arg(m_vu).arg(line));
}

QCoro::Task<> VuContext::sleep(microseconds d)
{
    if (m_hardStop || d.count() <= 0)
        co_return;
    QTimer timer;
    timer.setSingleShot(true);
    timer.setTimerType(Qt::PreciseTimer);
    m_sleepTimer = &timer;
    timer.start(int(std::max<qint64>(0, (d.count() + 500) / 1000)));
    co_await qCoro(&timer, &QTimer::timeout);
    m_sleepTimer = nullptr;
}

QCoro::Task<StepResponse> VuContext::request(StepRequest step)
{
    StepResponse out;
    if (m_hardStop) {
        out.error = ErrorKind::Interrupted;
        co_return out;
    }
    const ExecutorSetup *setup = m_worker->setup();
    QUrl url = step.path.startsWith(QLatin1String("http://")) || step.path.startsWith(QLatin1String("https://"))
        ? QUrl(step.path)
        : m_worker->m_baseUrl.resolved(QUrl(step.path.startsWith(QLatin1Char('/')) ? step.path.mid(1) : step.path));
    QByteArray method = step.method;
    QByteArray body = step.body;
    HttpHeaders headers = m_worker->m_defaultHeaders;
    for (const auto &h : std::as_const(step.headers)) {
        headers.erase(std::remove_if(headers.begin(), headers.end(),
                                     [&](const auto &d) { return d.first.compare(h.first, Qt::CaseInsensitive) == 0; }),
                      headers.end());
        headers.append(h);
    }

    for (int hop = 0;; ++hop) {
        ProtocolRequest pr;
        pr.method = method;
        pr.url = url;
        pr.headers = headers;
        const QList<QNetworkCookie> cookies = m_cookies.cookiesForUrl(url);
        if (!cookies.isEmpty()) {
            QByteArray cookieHeader;
            for (const QNetworkCookie &c : cookies) {
                if (!cookieHeader.isEmpty())
                    cookieHeader += "; ";
                cookieHeader += c.toRawForm(QNetworkCookie::NameAndValueOnly);
            }
            pr.headers.append({QByteArrayLiteral("Cookie"), cookieHeader});
        }
        pr.body = body;
        pr.timeout = m_worker->m_timeout;
        pr.affinity = quint64(m_vu);
        pr.wantBody = step.wantBody;
        pr.wantHeaders = true;

        // A named awaiter, not a temporary: g++ 12 destroys non-trivial temporaries of a co_await expression twice.
        SendAwaiter send{m_worker->client(), std::move(pr), &m_inflight, {}};
        ProtocolResponse r = co_await send;

        // Classify: a transport error stands; otherwise the status decides ok or http_status.
        ErrorKind outcome = r.error;
        const bool redirect = m_worker->m_followRedirects && r.error == ErrorKind::None && isRedirect(r.status)
            && !headerValue(r.headers, "location").isEmpty();
        const bool follow = redirect && !m_hardStop && hop < m_worker->m_maxRedirects;
        if (outcome == ErrorKind::None) {
            const bool expected = step.expectStatus.isEmpty() ? (r.status >= 200 && r.status < 400)
                                                              : step.expectStatus.contains(r.status);
            if (!expected)
                outcome = ErrorKind::HttpStatus;
            if (redirect && !follow && !m_hardStop) {
                // One redirect too many: the flow did not reach its target, as k6 and curl report it.
                outcome = ErrorKind::HttpStatus;
                r.errorMessage = QStringLiteral("stopped after %1 redirects (target.max_redirects)").arg(m_worker->m_maxRedirects);
            }
        }
        const qint64 latencyUs = std::max<qint64>(0, toUs(r.end - r.start));
        RunStats &stats = m_worker->bucketFor(r.end);
        stats.recordRequest(step.step, method, r.status, outcome, latencyUs, r.bytesReceived, r.bytesSent, r.protocol);
        if (m_open && outcome != ErrorKind::Interrupted) {
            // From the intended start: this request began (iteration start - intended start) late.
            const qint64 lagUs = std::max<qint64>(0, toUs(m_iterationStart - m_intended));
            stats.recordCorrected(latencyUs + lagUs, m_intervalUs);
        }
        if (r.status > 0) {
            for (const auto &h : std::as_const(r.headers)) {
                if (h.first.compare("server-timing", Qt::CaseInsensitive) == 0) {
                    for (const auto &[name, us] : parseServerTiming(h.second))
                        stats.recordServerTiming(name, us);
                } else if (h.first.compare("set-cookie", Qt::CaseInsensitive) == 0) {
                    m_cookies.setCookiesFromUrl(QNetworkCookie::parseCookies(h.second), url);
                }
            }
        }
        if (setup->collectSamples) {
            Sample s;
            s.tS = m_worker->sinceStartS(r.end);
            s.vu = m_vu;
            s.iter = m_iteration;
            s.step = step.step;
            s.method = method;
            s.url = url.toString();
            s.status = r.status;
            s.latencyMs = latencyUs / 1000.0;
            s.ttfbMs = r.status > 0 ? std::max<qint64>(0, toUs(r.firstByte - r.start)) / 1000.0 : 0.0;
            s.bytesReceived = r.bytesReceived;
            s.proto = r.protocol;
            s.outcome = outcome;
            s.error = outcome == ErrorKind::HttpStatus ? QStringLiteral("unexpected status %1").arg(r.status)
                                                       : r.errorMessage;
            m_worker->addSample(std::move(s));
        }

        out.status = r.status;
        out.error = outcome;
        out.errorMessage = r.errorMessage;
        out.headers = std::move(r.headers);
        out.body = std::move(r.body);
        out.latency = microseconds(latencyUs);

        // Redirects are followed here, not by the engine, so that every hop is its own recorded request.
        if (follow) {
            const QUrl next = url.resolved(QUrl::fromEncoded(headerValue(out.headers, "location")));
            // Credentials are for the origin they were given to (as browsers and curl do).
            if (next.scheme() != url.scheme() || next.host() != url.host() || next.port() != url.port())
                headers.erase(std::remove_if(headers.begin(), headers.end(),
                                             [](const auto &h) {
                                                 return h.first.compare("authorization", Qt::CaseInsensitive) == 0;
                                             }),
                              headers.end());
            url = next;
            if (r.status == 303 || ((r.status == 301 || r.status == 302) && method == "POST")) {
                method = "GET";
                body.clear();
                headers.erase(std::remove_if(headers.begin(), headers.end(),
                                             [](const auto &h) {
                                                 return h.first.compare("content-type", Qt::CaseInsensitive) == 0;
                                             }),
                              headers.end());
            }
            continue;
        }
        co_return out;
    }
}

// ---------------------------------------------------------------------------------------------------------------
Worker::Worker(int index, const ExecutorSetup *setup, Executor *executor, MonoClock::time_point start)
    : m_index(index)
    , m_setup(setup)
    , m_executor(executor)
    , m_start(start)
{
}

Worker::~Worker() = default;

void Worker::init()
{
    const json &target = m_setup->config.at("target");
    QString base = QString::fromStdString(target.at("base_url").get<std::string>());
    if (!base.endsWith(QLatin1Char('/')))
        base += QLatin1Char('/'); // so that resolving "api/items" keeps a base path such as /v1/
    m_baseUrl = QUrl(base);
    if (target.contains("headers"))
        for (auto it = target["headers"].begin(); it != target["headers"].end(); ++it)
            m_defaultHeaders.append({QByteArray::fromStdString(it.key()), QByteArray::fromStdString(it.value().get<std::string>())});
    if (headerValue(m_defaultHeaders, "user-agent").isEmpty())
        m_defaultHeaders.append({QByteArrayLiteral("User-Agent"), QByteArrayLiteral("userflux/" USERFLUX_VERSION)});
    if (target.contains("timeout"))
        m_timeout = duration_cast<milliseconds>(*parseDuration(QString::fromStdString(target["timeout"].get<std::string>())));
    m_followRedirects = target.value("follow_redirects", false);
    m_maxRedirects = target.value("max_redirects", 10);
    m_client = m_setup->protocol->createClient(ProtocolOptions{m_setup->config});
}

RunStats &Worker::bucketFor(MonoClock::time_point t)
{
    const qint64 index = std::max<qint64>(0, duration_cast<microseconds>(t - m_start).count() / 1000000);
    return m_buckets[index];
}

void Worker::log(const QString &line)
{
    if (m_logBudget <= 0)
        return;
    if (--m_logBudget == 0) {
        QMetaObject::invokeMethod(m_executor, [e = m_executor, i = m_index] {
            if (e->onLog) e->onLog(QStringLiteral("worker %1: too many scenario log lines; further ones are dropped").arg(i));
        }, Qt::QueuedConnection);
        return;
    }
    QMetaObject::invokeMethod(m_executor, [e = m_executor, line] {
        if (e->onLog) e->onLog(line);
    }, Qt::QueuedConnection);
}

void Worker::activateVu(int vu, qint64 maxIterations)
{
    bool created = false;
    auto it = m_current.find(vu);
    if (it != m_current.end() && !it->second->m_hardStop) {
        // Still finishing a graceful stop: a ramp back up revives it rather than starting a twin.
        it->second->m_stopRequested = false;
    } else {
        auto ctx = std::make_unique<VuContext>(this, vu);
        ctx->m_serial = m_nextSerial++;
        ctx->m_maxIterations = maxIterations;
        ctx->m_script = m_setup->scenario->createVu(vu);
        VuContext *raw = ctx.get();
        m_vus.emplace(raw->m_serial, std::move(ctx));
        m_current[vu] = raw;
        raw->m_task = runVu(raw);
        created = true;
    }
    QMetaObject::invokeMethod(m_executor, [e = m_executor, created] { e->onVuActivated(created); }, Qt::QueuedConnection);
}

QCoro::Task<> Worker::runVu(VuContext *vu)
{
    // Let activateVu() return before the first request goes out.
    co_await QCoro::sleepFor(std::chrono::milliseconds(0));
    while (!vu->m_stopRequested && (vu->m_maxIterations == 0 || vu->m_iteration < vu->m_maxIterations)) {
        bool complete = false;
        try {
            complete = co_await vu->m_script->iteration(*vu);
        } catch (const std::exception &e) {
            log(QStringLiteral("vu %1: iteration %2 failed: %3").arg(vu->m_vu).arg(vu->m_iteration).arg(QString::fromUtf8(e.what())));
        }
        if (complete) // an iteration cut short by a hard stop is not counted
            bucketFor(MonoClock::now()).iterations += 1;
        if (vu->m_hardStop)
            break;
        ++vu->m_iteration;
    }
    const int id = vu->m_vu;
    const quint64 serial = vu->m_serial;
    if (auto it = m_current.find(id); it != m_current.end() && it->second == vu)
        m_current.erase(it);
    // This coroutine frame is still running: destroy the vUser (and the task holding this frame) later.
    QMetaObject::invokeMethod(this, [this, serial] { m_vus.erase(serial); }, Qt::QueuedConnection);
    QMetaObject::invokeMethod(m_executor, [e = m_executor, id] { e->onVuExited(id); }, Qt::QueuedConnection);
}

void Worker::createIdleVu(int vu)
{
    auto ctx = std::make_unique<VuContext>(this, vu);
    ctx->m_serial = m_nextSerial++;
    ctx->m_open = true;
    ctx->m_script = m_setup->scenario->createVu(vu);
    m_idle.push_back(ctx.get());
    m_vus.emplace(ctx->m_serial, std::move(ctx));
}

void Worker::startIteration(MonoClock::time_point intended, qint64 expectedIntervalUs)
{
    if (m_idle.empty()) {
        // Cannot happen: the executor only dispatches to a worker it knows has an idle vUser. Say so if it does.
        log(QStringLiteral("worker %1: no idle vUser for a dispatched iteration").arg(m_index));
        QMetaObject::invokeMethod(m_executor, [e = m_executor, i = m_index] { e->onOpenIterationDone(i); }, Qt::QueuedConnection);
        return;
    }
    VuContext *vu = m_idle.back();
    m_idle.pop_back();
    vu->m_intended = intended;
    vu->m_intervalUs = expectedIntervalUs;
    vu->m_task = runOpenIteration(vu);
}

QCoro::Task<> Worker::runOpenIteration(VuContext *vu)
{
    vu->m_iterationStart = MonoClock::now();
    bool complete = false;
    if (!vu->m_hardStop) {
        try {
            complete = co_await vu->m_script->iteration(*vu);
        } catch (const std::exception &e) {
            log(QStringLiteral("vu %1: iteration %2 failed: %3").arg(vu->m_vu).arg(vu->m_iteration).arg(QString::fromUtf8(e.what())));
        }
    }
    if (complete)
        bucketFor(MonoClock::now()).iterations += 1;
    ++vu->m_iteration;
    m_idle.push_back(vu);
    QMetaObject::invokeMethod(m_executor, [e = m_executor, i = m_index] { e->onOpenIterationDone(i); }, Qt::QueuedConnection);
}

void Worker::requestStopVu(int vu)
{
    if (auto it = m_current.find(vu); it != m_current.end())
        it->second->m_stopRequested = true;
}

void Worker::hardStopVu(int vu)
{
    if (auto it = m_current.find(vu); it != m_current.end()) {
        VuContext *ctx = it->second;
        m_current.erase(it);
        ctx->hardStop();
    }
}

void Worker::hardStopAll()
{
    m_current.clear();
    for (auto &[serial, vu] : m_vus)
        vu->hardStop();
}

void Worker::flush(quint64 round, qint64 upTo, bool final)
{
    auto report = std::make_shared<std::map<qint64, RunStats>>();
    for (auto it = m_buckets.begin(); it != m_buckets.end();) {
        if (final || it->first < upTo) {
            report->emplace(it->first, std::move(it->second));
            it = m_buckets.erase(it);
        } else {
            ++it;
        }
    }
    auto samples = std::make_shared<std::vector<Sample>>(std::move(m_samples));
    m_samples.clear();
    const qint64 retries = m_client ? m_client->retries() : 0;
    auto r = std::make_shared<Executor::WorkerReport>();
    r->round = round;
    r->worker = m_index;
    r->buckets = std::move(*report);
    r->samples = std::move(*samples);
    r->retries = retries;
    QMetaObject::invokeMethod(m_executor, [e = m_executor, r] { e->onReport(r); }, Qt::QueuedConnection);
}

void Worker::shutdown()
{
    m_current.clear();
    m_vus.clear();
    m_client.reset();
}

} // namespace Userflux

// ---------------------------------------------------------------------------------------------------------------
namespace Userflux {

Executor::Executor(ExecutorSetup setup, QObject *parent)
    : QObject(parent)
    , m_setup(std::move(setup))
{
}

Executor::~Executor()
{
    for (size_t i = 0; i < m_workers.size(); ++i) {
        if (m_threads[i]->isRunning()) {
            QMetaObject::invokeMethod(m_workers[i], [w = m_workers[i]] { w->shutdown(); }, Qt::BlockingQueuedConnection);
            m_threads[i]->quit();
            m_threads[i]->wait();
        }
        delete m_workers[i];
        delete m_threads[i];
    }
}

double Executor::elapsedS() const
{
    const auto end = m_finished ? m_end : MonoClock::now();
    return duration<double>(end - m_start).count();
}

void Executor::start()
{
    const LoadPlan &plan = m_setup.plan;
    int workers = plan.workers > 0 ? plan.workers : std::max(1, QThread::idealThreadCount());
    workers = std::clamp(workers, 1, std::max(1, plan.maxVus()));
    m_start = MonoClock::now();
    m_workerRetries.assign(size_t(workers), 0);
    for (int i = 0; i < workers; ++i) {
        auto *thread = new QThread;
        thread->setObjectName(QStringLiteral("userflux-worker-%1").arg(i));
        auto *worker = new Worker(i, &m_setup, this, m_start);
        worker->moveToThread(thread);
        thread->start();
        m_threads.push_back(thread);
        m_workers.push_back(worker);
        QMetaObject::invokeMethod(worker, [worker] { worker->init(); }, Qt::BlockingQueuedConnection);
    }
    if (onLog)
        onLog(QStringLiteral("run started: %1 worker thread(s), up to %2 vUsers").arg(workers).arg(plan.maxVus()));

    if (plan.model == LoadPlan::Model::Open) {
        // The whole pool is allocated up front, so starting an iteration never waits for a vUser to be built.
        m_freeSlots.assign(size_t(workers), 0);
        for (int vu = 1; vu <= plan.vus; ++vu) {
            const int w = (vu - 1) % workers;
            ++m_freeSlots[size_t(w)];
            Worker *worker = m_workers[size_t(w)];
            QMetaObject::invokeMethod(worker, [worker, vu] { worker->createIdleVu(vu); }, Qt::BlockingQueuedConnection);
        }
        m_scheduler = new QTimer(this);
        m_scheduler->setSingleShot(true);
        m_scheduler->setTimerType(Qt::PreciseTimer);
        connect(m_scheduler, &QTimer::timeout, this, &Executor::scheduleArrivals);
        m_start = MonoClock::now(); // the schedule starts now that the pool is ready
        for (Worker *w : m_workers)
            QMetaObject::invokeMethod(w, [w, t = m_start] { w->resetStart(t); }, Qt::BlockingQueuedConnection);
    }

    m_ticker = new QTimer(this);
    m_ticker->setTimerType(Qt::PreciseTimer);
    m_ticker->setInterval(50);
    connect(m_ticker, &QTimer::timeout, this, &Executor::tick);
    m_ticker->start();
    if (m_scheduler)
        scheduleArrivals();
    tick();
}

void Executor::scheduleArrivals()
{
    if (m_stopRequested || m_planDone || m_finishing)
        return;
    const LoadPlan &plan = m_setup.plan;
    for (;;) {
        const auto due = plan.arrivalTime(m_nextArrival);
        if (!due) {
            m_planDone = true;
            scheduleHardStop();
            maybeFinish();
            return;
        }
        const auto elapsed = duration_cast<microseconds>(MonoClock::now() - m_start);
        if (*due > elapsed) {
            // Wake at the next due time: iterations start on their schedule, never in a burst to catch up.
            m_scheduler->start(int((*due - elapsed).count() / 1000));
            return;
        }
        dispatchArrival(*due);
        ++m_nextArrival;
    }
}

void Executor::dispatchArrival(microseconds due)
{
    const size_t workers = m_workers.size();
    for (size_t n = 0; n < workers; ++n) {
        const size_t w = (m_nextWorker + n) % workers;
        if (m_freeSlots[w] <= 0)
            continue;
        m_nextWorker = (w + 1) % workers;
        --m_freeSlots[w];
        ++m_running;
        noteVus();
        // The interval at which each pool vUser is expected to start an iteration at this rate: the unit of the
        // coordinated-omission correction.
        const double rate = m_setup.plan.rateAt(due);
        const qint64 intervalUs = rate > 0 ? qint64(double(m_setup.plan.vus) / rate * 1e6) : 0;
        Worker *worker = m_workers[w];
        QMetaObject::invokeMethod(worker, [worker, t = m_start + due, intervalUs] { worker->startIteration(t, intervalUs); },
                                  Qt::QueuedConnection);
        return;
    }
    // Every vUser of the pool is busy: the iteration is dropped (counted in the second it was due).
    const qint64 index = std::max<qint64>(due.count() / 1000000, m_nextBucket);
    m_pendingBuckets[index].droppedIterations += 1;
}

void Executor::onOpenIterationDone(int worker)
{
    ++m_freeSlots[size_t(worker)];
    --m_running;
    maybeFinish();
}

void Executor::scheduleHardStop()
{
    // Open model: iterations still running graceful_stop after the end (or a stop) are interrupted.
    if (m_hardStopScheduled)
        return;
    m_hardStopScheduled = true;
    QTimer::singleShot(duration_cast<milliseconds>(m_setup.plan.gracefulStop), this, [this] {
        if (m_finishing)
            return;
        for (Worker *w : m_workers)
            QMetaObject::invokeMethod(w, [w] { w->hardStopAll(); }, Qt::QueuedConnection);
    });
}

void Executor::tick()
{
    if (m_finished)
        return;
    const auto now = MonoClock::now();
    const auto elapsed = duration_cast<microseconds>(now - m_start);
    const LoadPlan &plan = m_setup.plan;

    if (!m_stopRequested && !m_planDone && plan.model != LoadPlan::Model::Open) {
        if (plan.model == LoadPlan::Model::ClosedIterations) {
            if (m_target == 0)
                setTarget(plan.vus);
            if (plan.maxDuration && elapsed >= *plan.maxDuration) {
                if (onLog)
                    onLog(QStringLiteral("max_duration reached: stopping vUsers"));
                m_planDone = true;
                setTarget(0);
            }
        } else if (elapsed >= plan.plannedDuration()) {
            m_planDone = true;
            setTarget(0);
        } else {
            // floor: a ramp reaches each whole vUser when the line crosses it, and never overshoots the target
            setTarget(int(std::floor(plan.targetAt(elapsed) + 1e-9)));
        }
    }
    noteVus();
    // One flush round at a time, shortly after each second boundary, so buckets are complete when emitted.
    const qint64 second = elapsed.count() / 1000000;
    if (m_pendingReplies == 0 && !m_finishing && second > m_nextBucket && (elapsed.count() % 1000000) >= 20000)
        requestFlush(false);

    maybeFinish();
}

void Executor::setTarget(int target)
{
    const int workers = int(m_workers.size());
    const qint64 maxIterations = m_setup.plan.model == LoadPlan::Model::ClosedIterations ? m_setup.plan.iterations : 0;
    while (m_target < target) {
        const int vu = ++m_target;
        Worker *w = m_workers[size_t((vu - 1) % workers)];
        ++m_stopGeneration[vu]; // cancels a pending hard stop of this id
        ++m_pendingActivations;
        QMetaObject::invokeMethod(w, [w, vu, maxIterations] { w->activateVu(vu, maxIterations); }, Qt::QueuedConnection);
    }
    while (m_target > target) {
        const int vu = m_target--;
        Worker *w = m_workers[size_t((vu - 1) % workers)];
        const quint64 gen = ++m_stopGeneration[vu];
        QMetaObject::invokeMethod(w, [w, vu] { w->requestStopVu(vu); }, Qt::QueuedConnection);
        const auto grace = duration_cast<milliseconds>(m_setup.plan.gracefulStop);
        QTimer::singleShot(grace, this, [this, vu, gen] { hardStopVu(vu, gen); });
    }
}

void Executor::hardStopVu(int vu, quint64 generation)
{
    // Only when this stop request is still the latest for the vUser (a ramp back up cancels it).
    if (m_stopGeneration[vu] != generation)
        return;
    Worker *w = m_workers[size_t((vu - 1) % int(m_workers.size()))];
    QMetaObject::invokeMethod(w, [w, vu] { w->hardStopVu(vu); }, Qt::QueuedConnection);
}

void Executor::onVuActivated(bool created)
{
    --m_pendingActivations;
    if (created)
        ++m_running;
    noteVus();
}

void Executor::noteVus()
{
    // A bucket's "vus" is the most vUsers active at any moment of its second. In the closed model a vUser above
    // the target is only finishing its iteration (ramp-down): it is not active, so "vus" never exceeds the target.
    const int active = m_setup.plan.model == LoadPlan::Model::Open ? m_running : std::min(m_running, m_target);
    m_vusMax = std::max(m_vusMax, active);
    const qint64 index = duration_cast<microseconds>(MonoClock::now() - m_start).count() / 1000000;
    int &v = m_bucketVus[index];
    v = std::max(v, active);
}

void Executor::onVuExited(int)
{
    --m_running;
    maybeFinish();
}

void Executor::maybeFinish()
{
    if (m_finishing || m_running > 0 || m_pendingActivations > 0)
        return;
    if (m_setup.plan.model == LoadPlan::Model::ClosedIterations && m_target > 0)
        m_planDone = true; // every vUser did its iterations
    if (m_setup.plan.model == LoadPlan::Model::Open && !m_planDone && !m_stopRequested)
        return; // between two arrivals nothing runs, and that is not the end
    if (m_planDone || m_stopRequested)
        beginFinish();
}

void Executor::stop(bool hard)
{
    if (m_finished)
        return;
    if (!m_stopRequested && m_planDone)
        m_stoppedAfterPlan = true; // only the last iterations were still finishing
    if (m_stopRequested || hard) {
        if (!m_hardStopped) {
            m_hardStopped = true;
            if (onLog)
                onLog(QStringLiteral("stopping now: interrupting requests in flight"));
            for (Worker *w : m_workers)
                QMetaObject::invokeMethod(w, [w] { w->hardStopAll(); }, Qt::QueuedConnection);
        }
        m_stopRequested = true;
        return;
    }
    m_stopRequested = true;
    if (onLog)
        onLog(QStringLiteral("stop requested: vUsers finish their iteration (graceful_stop %1)")
                  .arg(formatDuration(m_setup.plan.gracefulStop)));
    if (m_setup.plan.model == LoadPlan::Model::Open) {
        m_scheduler->stop();
        scheduleHardStop();
    } else {
        setTarget(0);
    }
    maybeFinish();
}

void Executor::requestFlush(bool final)
{
    const auto elapsed = duration_cast<microseconds>((final ? m_end : MonoClock::now()) - m_start);
    m_flushUpTo = final ? elapsed.count() / 1000000 + 1 : elapsed.count() / 1000000;
    m_finalFlush = final;
    ++m_flushRound;
    m_pendingReplies = int(m_workers.size());
    const quint64 round = m_flushRound;
    const qint64 upTo = m_flushUpTo;
    for (Worker *w : m_workers)
        QMetaObject::invokeMethod(w, [w, round, upTo, final] { w->flush(round, upTo, final); }, Qt::QueuedConnection);
}

void Executor::onReport(std::shared_ptr<WorkerReport> report)
{
    if (report->round != m_flushRound)
        return;
    for (auto &[index, stats] : report->buckets)
        m_pendingBuckets[index].merge(stats);
    m_workerRetries[size_t(report->worker)] = report->retries;
    if (!report->samples.empty() && onSamples)
        onSamples(std::move(report->samples));
    if (--m_pendingReplies > 0)
        return;
    m_retries = 0;
    for (qint64 r : m_workerRetries)
        m_retries += r;
    emitBuckets(m_flushUpTo, m_finalFlush);
    if (m_finalFlush)
        finish();
}

void Executor::emitBuckets(qint64 upTo, bool final)
{
    const double endS = duration<double>(m_end - m_start).count();
    for (qint64 index = m_nextBucket; index < upTo; ++index) {
        RunStats stats;
        if (auto it = m_pendingBuckets.find(index); it != m_pendingBuckets.end()) {
            stats = std::move(it->second);
            m_pendingBuckets.erase(it);
        }
        const bool last = final && index == upTo - 1;
        // The last bucket of a run is as long as the run lasted into it, so requests/s is never overstated.
        const double durationS = last ? std::max(1e-3, endS - double(index)) : 1.0;
        const qint64 finished = stats.ok + stats.errors;
        json bucket = {
            {"schema", "userflux.timeseries/1"},
            {"t_s", index},
            {"duration_s", std::round(durationS * 1e6) / 1e6},
            {"vus", m_bucketVus.count(index) ? m_bucketVus[index] : 0},
            {"requests", finished},
            {"ok", stats.ok},
            {"errors", stats.errors},
            {"interrupted", stats.interrupted},
            {"iterations", stats.iterations},
            {"throughput_rps", std::round(finished / durationS * 1000.0) / 1000.0},
            {"bytes_received", stats.bytesReceived},
        };
        if (m_setup.plan.model == LoadPlan::Model::Open) {
            bucket["dropped_iterations"] = stats.droppedIterations;
            if (stats.latencyCorrected && stats.latencyCorrected->count() > 0) {
                const Histogram &h = *stats.latencyCorrected;
                auto ms = [](qint64 us) { return std::round(double(us)) / 1000.0; };
                bucket["latency_corrected_ms"] = {{"p50", ms(h.valueAtPercentile(50))}, {"p90", ms(h.valueAtPercentile(90))},
                                                  {"p95", ms(h.valueAtPercentile(95))}, {"p99", ms(h.valueAtPercentile(99))},
                                                  {"max", ms(h.max())}, {"mean", std::round(h.mean()) / 1000.0}};
            }
        }
        json byKind = json::object();
        for (const auto &[k, v] : stats.errorsByKind)
            byKind[k.toStdString()] = v;
        bucket["errors_by_kind"] = byKind;
        if (stats.latency.count() > 0) {
            const Histogram &h = stats.latency;
            auto ms = [](qint64 us) { return std::round(double(us)) / 1000.0; };
            bucket["latency_ms"] = {{"p50", ms(h.valueAtPercentile(50))}, {"p90", ms(h.valueAtPercentile(90))},
                                    {"p95", ms(h.valueAtPercentile(95))}, {"p99", ms(h.valueAtPercentile(99))},
                                    {"max", ms(h.max())}, {"mean", std::round(h.mean()) / 1000.0}};
        }
        m_bucketVus.erase(index);
        m_totals.merge(stats);
        m_timeseries.push_back(bucket);
        if (onBucket)
            onBucket(bucket);
    }
    m_nextBucket = std::max(m_nextBucket, upTo);
}

void Executor::beginFinish()
{
    m_finishing = true;
    m_end = MonoClock::now();
    m_ticker->stop();
    // Wait for a regular flush still in flight before the final one.
    if (m_pendingReplies > 0) {
        QTimer::singleShot(10, this, [this] {
            m_finishing = false;
            beginFinish();
        });
        return;
    }
    requestFlush(true);
}

void Executor::finish()
{
    m_finished = true;
    for (size_t i = 0; i < m_workers.size(); ++i) {
        QMetaObject::invokeMethod(m_workers[i], [w = m_workers[i]] { w->shutdown(); }, Qt::BlockingQueuedConnection);
        m_threads[i]->quit();
        m_threads[i]->wait();
    }
    if (onLog)
        onLog(QStringLiteral("run ended after %1 s: %2 requests").arg(elapsedS(), 0, 'f', 3).arg(m_totals.requests));
    if (onFinished)
        onFinished();
}

} // namespace Userflux
