#include "scriptableserver.h"

#include <QTimer>

#include <algorithm>

namespace Userflux::Test {

namespace {

constexpr qint64 MaxBytes = 64LL * 1024 * 1024;
constexpr qint64 MaxDelayMs = 120'000;

qint64 param(const QUrlQuery &query, const char *name, qint64 fallback, qint64 lo, qint64 hi)
{
    const QString key = QLatin1String(name);
    if (!query.hasQueryItem(key))
        return fallback;
    bool ok = false;
    const qint64 v = query.queryItemValue(key).toLongLong(&ok);
    return ok ? std::clamp(v, lo, hi) : fallback;
}

QByteArray payload(qint64 n)
{
    return QByteArray(qsizetype(n), 'x');
}

Http::Headers textPlain()
{
    return {{QByteArray("Content-Type"), QByteArray("text/plain")}};
}

} // namespace

// One request being answered: what it asked, how to answer, and whether it still counts (a reset since it
// arrived makes it belong to the previous epoch).
struct ScriptableServer::Exchange {
    Http::Request request;
    Http::Responder responder;
    quint64 generation = 0;
    bool wantsClose = false;
    bool settled = false;
};

ScriptableServer::ScriptableServer(QObject *parent)
    : QObject(parent), m_server(std::make_unique<Http::Server>(this))
{
    m_clock.start();
    m_server->setHandler([this](const Http::Request &request, Http::Responder responder) {
        handle(request, std::move(responder));
    });
}

ScriptableServer::~ScriptableServer() = default;

bool ScriptableServer::listen(const QHostAddress &address, quint16 port)
{
    return m_server->listen(address, port);
}

quint16 ScriptableServer::port() const
{
    return m_server->port();
}

QString ScriptableServer::errorString() const
{
    return m_server->errorString();
}

QUrl ScriptableServer::url(const QString &pathAndQuery) const
{
    QString host = m_server->address().toString();
    if (host.contains(QLatin1Char(':')))
        host = QLatin1Char('[') + host + QLatin1Char(']');
    return QUrl(QStringLiteral("http://%1:%2%3").arg(host).arg(port()).arg(pathAndQuery));
}

Http::Server &ScriptableServer::server()
{
    return *m_server;
}

void ScriptableServer::reset()
{
    ++m_generation;
    m_sleepSeq = 0;
    m_resetAfterSeq = 0;
    m_freezeStart = -1;
    const quint64 inFlight = m_stats.inFlight; // a gauge: requests in flight stay in flight
    m_stats = ScriptableStats{};
    m_stats.inFlight = inFlight;
    m_stats.maxInFlight = inFlight;
    m_coreBaseline = m_server->stats();
    m_connectionBaseline = m_coreBaseline.connectionsAccepted;
    m_controlConnections = 0;
    m_connectionsWithRequests.clear();
}

ScriptableStats ScriptableServer::stats() const
{
    ScriptableStats s = m_stats;
    const Http::ServerStats &core = m_server->stats();
    s.connectionsAccepted = core.connectionsAccepted - m_connectionBaseline - m_controlConnections;
    s.connectionsWithRequests = quint64(m_connectionsWithRequests.size());
    s.connectionsOpen = core.connectionsOpen;
    return s;
}

nlohmann::json ScriptableServer::statsJson() const
{
    const ScriptableStats s = stats();
    nlohmann::json byPath = nlohmann::json::object();
    for (auto it = s.requestsByPath.begin(); it != s.requestsByPath.end(); ++it)
        byPath[it.key().toStdString()] = it.value();
    const Http::ServerStats &core = m_server->stats();
    return {{"connections_accepted", s.connectionsAccepted},
            {"connections_with_requests", s.connectionsWithRequests},
            {"connections_open", s.connectionsOpen},
            {"requests_received", s.requestsReceived},
            {"responses_completed", s.responsesCompleted},
            {"responses_broken", s.responsesBroken},
            {"client_gone", s.clientGone},
            {"body_bytes_written", s.bodyBytesWritten},
            {"in_flight", s.inFlight},
            {"max_in_flight", s.maxInFlight},
            {"requests_by_path", byPath},
            {"core",
             {{"connections_accepted", core.connectionsAccepted - m_coreBaseline.connectionsAccepted},
              {"requests_received", core.requestsReceived - m_coreBaseline.requestsReceived},
              {"responses_completed", core.responsesCompleted - m_coreBaseline.responsesCompleted},
              {"bytes_written", core.bytesWritten - m_coreBaseline.bytesWritten},
              {"protocol_errors", core.protocolErrors - m_coreBaseline.protocolErrors}}}};
}

void ScriptableServer::handle(const Http::Request &request, Http::Responder responder)
{
    const bool control = request.path.startsWith(QLatin1String("/__"));
    if (control) {
        // A connection opened just to ask for the statistics is not part of what is being measured.
        if (request.indexOnConnection == 0 && request.connectionId > m_connectionBaseline)
            ++m_controlConnections;
        if (request.path == QLatin1String("/__stats")) {
            responder.sendJson(200, QByteArray::fromStdString(statsJson().dump()));
        } else if (request.path == QLatin1String("/__reset") && request.method == "POST") {
            reset();
            // The connection carrying the reset was accepted before it: it is not "accepted since".
            responder.sendJson(200, R"({"reset":true})");
        } else if (request.path == QLatin1String("/__reset")) {
            Http::Response r;
            r.status = 405;
            r.headers = {{QByteArray("Allow"), QByteArray("POST")}};
            responder.send(r);
        } else {
            Http::Response r;
            r.status = 404;
            responder.send(r);
        }
        return;
    }

    auto x = std::make_shared<Exchange>();
    x->request = request;
    x->responder = std::move(responder);
    x->generation = m_generation;
    x->wantsClose = request.query.queryItemValue(QStringLiteral("close")) == QLatin1String("1");
    ++m_stats.requestsReceived;
    ++m_stats.requestsByPath[request.path.startsWith(QLatin1String("/status/")) ? QStringLiteral("/status")
                                                                                 : request.path];
    ++m_stats.inFlight;
    m_stats.maxInFlight = std::max(m_stats.maxInFlight, m_stats.inFlight);
    m_connectionsWithRequests.insert(request.connectionId);

    const qint64 delay = param(request.query, "delay_ms", 0, 0, MaxDelayMs);
    later(delay, [this, x] { behave(x); });
}

// Runs fn after `ms`, then (like every step that writes) only once the server is not frozen.
void ScriptableServer::later(qint64 ms, std::function<void()> fn)
{
    if (ms <= 0) {
        held(std::move(fn));
        return;
    }
    QTimer::singleShot(std::chrono::milliseconds(ms), Qt::PreciseTimer, this,
                       [this, fn = std::move(fn)]() mutable { held(std::move(fn)); });
}

void ScriptableServer::held(std::function<void()> fn)
{
    const qint64 wait = freezeRemaining();
    if (wait <= 0) {
        fn();
        return;
    }
    QTimer::singleShot(std::chrono::milliseconds(wait), Qt::PreciseTimer, this,
                       [this, fn = std::move(fn)]() mutable { held(std::move(fn)); });
}

qint64 ScriptableServer::freezeRemaining() const
{
    if (m_freezeStart < 0)
        return 0;
    const qint64 t = m_clock.elapsed() - m_freezeStart;
    if (t >= m_freezeAt && t < m_freezeAt + m_freezeFor)
        return m_freezeAt + m_freezeFor - t;
    return 0;
}

void ScriptableServer::behave(const std::shared_ptr<Exchange> &x)
{
    const Http::Request &req = x->request;
    const QUrlQuery &q = req.query;
    const QString &path = req.path;
    const bool head = req.method == "HEAD";

    auto simple = [&](int status, QByteArray body, Http::Headers headers = textPlain()) {
        Http::Response r;
        r.status = status;
        r.body = std::move(body);
        r.headers = std::move(headers);
        sendCounted(x, std::move(r));
    };
    auto okBody = [&] {
        const qint64 n = param(q, "bytes", -1, 0, MaxBytes);
        return n < 0 ? QByteArray("ok") : payload(n);
    };

    if (path == QLatin1String("/ok")) {
        simple(200, okBody());
    } else if (path.startsWith(QLatin1String("/status/"))) {
        bool ok = false;
        const int code = path.mid(8).toInt(&ok);
        if (!ok || code < 200 || code > 599) {
            simple(400, "status must be 200..599\n");
            return;
        }
        const qint64 n = param(q, "bytes", -1, 0, MaxBytes);
        simple(code, n < 0 ? "status " + QByteArray::number(code) + '\n' : payload(n));
    } else if (path == QLatin1String("/delay")) {
        const qint64 ms = param(q, "ms", 0, 0, MaxDelayMs);
        later(ms, [this, x] {
            const qint64 n = param(x->request.query, "bytes", -1, 0, MaxBytes);
            Http::Response r;
            r.body = n < 0 ? QByteArray("ok") : payload(n);
            r.headers = textPlain();
            sendCounted(x, std::move(r));
        });
    } else if (path == QLatin1String("/sleep-seq")) {
        const qint64 start = param(q, "start_ms", 10, 0, MaxDelayMs);
        const qint64 step = param(q, "step_ms", 10, -MaxDelayMs, MaxDelayMs);
        const qint64 max = param(q, "max_ms", MaxDelayMs, 0, MaxDelayMs);
        const qint64 i = qint64(m_sleepSeq++);
        const qint64 ms = std::clamp<qint64>(start + i * step, 0, max);
        later(ms, [this, x, ms] {
            Http::Response r;
            r.body = "ok";
            r.headers = textPlain();
            r.headers.append({QByteArray("X-Sleep-Ms"), QByteArray::number(ms)});
            sendCounted(x, std::move(r));
        });
    } else if (path == QLatin1String("/close-delimited")) {
        const qint64 n = param(q, "bytes", 10, 0, MaxBytes);
        writeBody(x, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
                  head ? QByteArray() : payload(n));
        complete(x, true);
    } else if (path == QLatin1String("/chunked")) {
        const qint64 chunks = param(q, "chunks", 3, 0, 10000);
        const qint64 size = param(q, "chunk_bytes", 10, 1, 1024 * 1024);
        const qint64 lastDelay = param(q, "last_delay_ms", 0, 0, MaxDelayMs);
        const QByteArray chunk = QByteArray::number(size, 16) + "\r\n" + payload(size) + "\r\n";
        QByteArray headBytes = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n";
        if (x->wantsClose)
            headBytes += "Connection: close\r\n";
        headBytes += "\r\n";
        if (head) {
            writeBody(x, headBytes, {});
            complete(x, x->wantsClose);
            return;
        }
        QByteArray first = headBytes;
        for (qint64 i = 0; i + 1 < chunks; ++i)
            first += chunk;
        const qint64 firstPayload = std::max<qint64>(chunks - 1, 0) * size;
        const bool connected = x->responder.isConnected();
        x->responder.writeRaw(first);
        if (connected && x->generation == m_generation)
            m_stats.bodyBytesWritten += quint64(firstPayload);
        later(lastDelay, [this, x, chunks, chunk, size] {
            if (!x->responder.isConnected()) {
                if (settle(x) && x->generation == m_generation)
                    ++m_stats.clientGone;
                return;
            }
            x->responder.writeRaw((chunks > 0 ? chunk : QByteArray()) + "0\r\n\r\n");
            if (x->generation == m_generation && chunks > 0)
                m_stats.bodyBytesWritten += quint64(size);
            complete(x, x->wantsClose);
        });
    } else if (path == QLatin1String("/close-every")) {
        const qint64 n = param(q, "n", 5, 1, 1'000'000);
        if ((req.indexOnConnection + 1) % n == 0)
            x->wantsClose = true;
        simple(200, okBody());
    } else if (path == QLatin1String("/head-length")) {
        const qint64 n = param(q, "bytes", 1024 * 1024, 0, MaxBytes);
        if (head) {
            QByteArray h = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
                           + QByteArray::number(n) + "\r\n";
            if (x->wantsClose)
                h += "Connection: close\r\n";
            writeBody(x, h + "\r\n", {});
            complete(x, x->wantsClose);
        } else {
            simple(200, payload(n), {{QByteArray("Content-Type"), QByteArray("application/octet-stream")}});
        }
    } else if (path == QLatin1String("/no-content")) {
        simple(204, {}, {});
    } else if (path == QLatin1String("/not-modified")) {
        QByteArray h = "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1000\r\n";
        if (x->wantsClose)
            h += "Connection: close\r\n";
        writeBody(x, h + "\r\n", {});
        complete(x, x->wantsClose);
    } else if (path == QLatin1String("/freeze")) {
        if (m_freezeStart < 0) {
            m_freezeStart = m_clock.elapsed();
            m_freezeAt = param(q, "at_ms", 1000, 0, MaxDelayMs);
            m_freezeFor = param(q, "for_ms", 1000, 0, MaxDelayMs);
        }
        // held() again: this very response may fall into the window it just defined.
        held([this, x] {
            Http::Response r;
            r.body = "ok";
            r.headers = textPlain();
            sendCounted(x, std::move(r));
        });
    } else if (path == QLatin1String("/reset-after")) {
        const qint64 n = param(q, "bytes", 1000, 0, MaxBytes);
        const qint64 every = param(q, "every", 2, 1, 1'000'000);
        const quint64 k = ++m_resetAfterSeq;
        if (k % quint64(every) != 0) {
            simple(200, payload(n));
            return;
        }
        if (!x->responder.isConnected()) {
            if (settle(x) && x->generation == m_generation)
                ++m_stats.clientGone;
            return;
        }
        // cut=M: the broken response advertises the N bytes of a normal one and carries only M < N of them (a
        // large body cut early); without it, it advertises 2N+1 and carries N.
        const qint64 cut = param(q, "cut", -1, 0, std::max<qint64>(n - 1, 0));
        const qint64 advertised = cut >= 0 ? n : 2 * n + 1;
        writeBody(x,
                  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + QByteArray::number(advertised)
                      + "\r\n\r\n",
                  payload(cut >= 0 ? cut : n));
        x->responder.abort();
        broken(x);
    } else if (path == QLatin1String("/redirect")) {
        const qint64 n = param(q, "n", 1, 0, 1000);
        if (n <= 0) {
            simple(200, "ok");
            return;
        }
        const QByteArray location = n == 1 ? QByteArray("/ok") : "/redirect?n=" + QByteArray::number(n - 1);
        simple(302, {}, {{QByteArray("Location"), location}});
    } else if (path == QLatin1String("/garbage")) {
        static const char garbage[] = "this is not HTTP at all\r\n\x01\x02\xff\xfe garbage \r\n\r\n";
        x->responder.writeRaw(QByteArray(garbage, sizeof garbage - 1));
        x->responder.close();
        broken(x);
    } else if (path == QLatin1String("/echo")) {
        QByteArray type = req.header("Content-Type");
        if (type.isEmpty())
            type = "application/octet-stream";
        simple(200, req.body, {{QByteArray("Content-Type"), type}});
    } else if (path == QLatin1String("/headers")) {
        nlohmann::json headers = nlohmann::json::array();
        for (const auto &h : req.headers)
            headers.push_back({h.first.toStdString(), h.second.toStdString()});
        const nlohmann::json j{{"method", req.method.toStdString()},
                               {"target", req.target.toStdString()},
                               {"version", req.version.toStdString()},
                               {"headers", headers},
                               {"connection_id", req.connectionId},
                               {"index_on_connection", req.indexOnConnection}};
        simple(200, QByteArray::fromStdString(j.dump()),
               {{QByteArray("Content-Type"), QByteArray("application/json")}});
    } else if (path == QLatin1String("/set-cookie")) {
        const QByteArray name = q.queryItemValue(QStringLiteral("name")).toUtf8();
        const QByteArray value = q.queryItemValue(QStringLiteral("value")).toUtf8();
        Http::Headers h = textPlain();
        h.append({QByteArray("Set-Cookie"), (name.isEmpty() ? QByteArray("session") : name) + '=' + value
                                                + "; Path=/"});
        simple(200, "ok", h);
    } else {
        simple(404, "no such behaviour: " + path.toUtf8() + '\n');
    }
}

// Marks the exchange answered (once); false when it already was.
bool ScriptableServer::settle(const std::shared_ptr<Exchange> &x)
{
    if (x->settled)
        return false;
    x->settled = true;
    if (m_stats.inFlight > 0)
        --m_stats.inFlight;
    return true;
}

void ScriptableServer::sendCounted(const std::shared_ptr<Exchange> &x, Http::Response r)
{
    const bool counted = x->generation == m_generation;
    if (!x->responder.isConnected()) {
        if (settle(x) && counted)
            ++m_stats.clientGone;
        return;
    }
    r.close = r.close || x->wantsClose;
    const bool bodyless = x->request.method == "HEAD" || r.status == 204 || r.status == 304
                          || (r.status >= 100 && r.status < 200);
    const qint64 bodyBytes = bodyless ? 0 : r.body.size();
    x->responder.send(r);
    if (settle(x) && counted) {
        ++m_stats.responsesCompleted;
        m_stats.bodyBytesWritten += quint64(bodyBytes);
    }
}

void ScriptableServer::writeBody(const std::shared_ptr<Exchange> &x, const QByteArray &head,
                                 const QByteArray &body)
{
    if (!x->responder.isConnected())
        return;
    x->responder.writeRaw(body.isEmpty() ? head : head + body);
    if (x->generation == m_generation)
        m_stats.bodyBytesWritten += quint64(body.size());
}

void ScriptableServer::complete(const std::shared_ptr<Exchange> &x, bool closeAfter)
{
    const bool connected = x->responder.isConnected();
    x->responder.finish(closeAfter);
    if (settle(x) && x->generation == m_generation) {
        if (connected)
            ++m_stats.responsesCompleted;
        else
            ++m_stats.clientGone;
    }
}

void ScriptableServer::broken(const std::shared_ptr<Exchange> &x)
{
    if (settle(x) && x->generation == m_generation)
        ++m_stats.responsesBroken;
}

} // namespace Userflux::Test
