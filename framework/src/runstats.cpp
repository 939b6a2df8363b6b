#include "userflux/runstats.h"

#include <cmath>

namespace Userflux {

void EndpointStats::merge(const EndpointStats &o)
{
    if (method.isEmpty())
        method = o.method;
    requests += o.requests;
    ok += o.ok;
    errors += o.errors;
    interrupted += o.interrupted;
    if (o.latency) {
        if (!latency)
            latency = std::make_unique<Histogram>();
        latency->merge(*o.latency);
    }
}

void RunStats::recordRequest(const QString &step, const QByteArray &method, int status, ErrorKind error,
                             qint64 latencyUs, qint64 received, qint64 sent, const QByteArray &protocol)
{
    ++requests;
    bytesReceived += received;
    bytesSent += sent;
    EndpointStats &ep = endpoints[step];
    if (ep.method.isEmpty())
        ep.method = method;
    ++ep.requests;
    if (error == ErrorKind::Interrupted) {
        // Cut by the run: neither ok nor error, and in no latency block.
        ++interrupted;
        ++ep.interrupted;
        return;
    }
    if (status > 0) {
        ++statusCodes[status];
        if (!protocol.isEmpty())
            ++protocols[protocol];
    }
    latency.record(latencyUs);
    if (!ep.latency)
        ep.latency = std::make_unique<Histogram>();
    ep.latency->record(latencyUs);
    if (error == ErrorKind::None) {
        ++ok;
        ++ep.ok;
        latencyOk.record(latencyUs);
    } else {
        ++errors;
        ++ep.errors;
        ++errorsByKind[errorKindName(error)];
    }
}

void RunStats::recordServerTiming(const QString &metric, qint64 durUs)
{
    auto &h = serverTiming[metric];
    if (!h)
        h = std::make_unique<Histogram>();
    h->record(durUs);
}

void RunStats::recordCorrected(qint64 latencyUs, qint64 expectedIntervalUs)
{
    if (!latencyCorrected)
        latencyCorrected = std::make_unique<Histogram>();
    latencyCorrected->record(latencyUs);
    if (expectedIntervalUs <= 0)
        return;
    // Bounded: at most 10000 back-filled samples per request, so an absurd interval cannot stall a worker.
    int budget = 10000;
    for (qint64 missing = latencyUs - expectedIntervalUs; missing >= expectedIntervalUs && budget-- > 0;
         missing -= expectedIntervalUs)
        latencyCorrected->record(missing);
}

void RunStats::recordCheck(const QString &step, const QString &check, bool passed)
{
    CheckStats &c = checks[{step, check}];
    (passed ? c.passes : c.fails) += 1;
}

void RunStats::merge(const RunStats &o)
{
    requests += o.requests;
    ok += o.ok;
    errors += o.errors;
    interrupted += o.interrupted;
    iterations += o.iterations;
    droppedIterations += o.droppedIterations;
    bytesReceived += o.bytesReceived;
    bytesSent += o.bytesSent;
    latency.merge(o.latency);
    latencyOk.merge(o.latencyOk);
    if (o.latencyCorrected) {
        if (!latencyCorrected)
            latencyCorrected = std::make_unique<Histogram>();
        latencyCorrected->merge(*o.latencyCorrected);
    }
    for (const auto &[k, v] : o.statusCodes)
        statusCodes[k] += v;
    for (const auto &[k, v] : o.errorsByKind)
        errorsByKind[k] += v;
    for (const auto &[k, v] : o.endpoints)
        endpoints[k].merge(v);
    for (const auto &[k, v] : o.serverTiming) {
        auto &h = serverTiming[k];
        if (!h)
            h = std::make_unique<Histogram>();
        h->merge(*v);
    }
    for (const auto &[k, v] : o.checks) {
        checks[k].passes += v.passes;
        checks[k].fails += v.fails;
    }
    for (const auto &[k, v] : o.protocols)
        protocols[k] += v;
}

nlohmann::json latencyBlock(const Histogram &h)
{
    return latencyBlockMs(h);
}

std::vector<std::pair<QString, qint64>> parseServerTiming(const QByteArray &value)
{
    std::vector<std::pair<QString, qint64>> out;
    for (const QByteArray &entry : value.split(',')) {
        const QList<QByteArray> parts = entry.split(';');
        const QByteArray name = parts.value(0).trimmed();
        if (name.isEmpty())
            continue;
        for (int i = 1; i < parts.size(); ++i) {
            const QByteArray p = parts[i].trimmed();
            if (!p.startsWith("dur="))
                continue;
            bool ok = false;
            const double ms = p.mid(4).trimmed().toDouble(&ok);
            if (ok && std::isfinite(ms) && ms >= 0)
                out.emplace_back(QString::fromLatin1(name), qint64(std::llround(ms * 1000.0)));
            break;
        }
    }
    return out;
}

} // namespace Userflux
