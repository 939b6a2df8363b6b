#pragma once
// Userflux::Test::ScriptableServer: an HTTP/1.1 test server (on Userflux::Http::Server) whose path and query
// choose how it answers, including the ways real servers misbehave. Used by the unit tests in-process and, as
// `userflux-testserver`, by the Python integration tests.
//
// Behaviours (GET unless said; every numeric parameter is optional and clamped to a sane bound):
//   /ok?bytes=N                      200, N body bytes ('x'; without bytes the body is "ok")
//   /status/CODE?bytes=N             status CODE (200..599), body "status CODE\n" or N bytes (none for 204/304)
//   /delay?ms=N&bytes=N              200 after N ms
//   /sleep-seq?start_ms=10&step_ms=10&max_ms=M
//                                    the i-th /sleep-seq request since the last reset (i from 0) waits
//                                    min(start + i*step, max) ms; header X-Sleep-Ms says how long
//   /close-delimited?bytes=N         200 with neither Content-Length nor chunking, Connection: close, N body bytes
//                                    (default 10), then the server closes
//   /chunked?chunks=3&chunk_bytes=10&last_delay_ms=N
//                                    200 Transfer-Encoding: chunked; all chunks but the last at once, the last
//                                    one and the terminating 0-chunk after N ms
//   /close-every?n=5                 200 "ok"; every n-th request of a connection (1-based index % n == 0) is
//                                    answered with Connection: close and the connection closed
//   /head-length?bytes=N             HEAD: 200 with Content-Length N (default 1048576) and no body;
//                                    GET: 200 with those N bytes
//   /no-content                      204, no body, no Content-Length
//   /not-modified                    304 with Content-Length: 1000 and no body
//   /freeze?at_ms=X&for_ms=Y         200 "ok". The first /freeze request since the last reset starts a clock;
//                                    from X to X+Y ms on that clock the server is frozen: every response of
//                                    every behaviour (including later chunks) due in that window is held until
//                                    its end. Later /freeze requests do not move the window.
//   /reset-after?bytes=N&every=2&cut=M
//                                    the k-th /reset-after request since the last reset (k from 1): when
//                                    k % every == 0, a 200 advertising Content-Length 2N+1, N body bytes, then a
//                                    TCP reset (with cut=M, 0 <= M < N: advertising N, only M body bytes, then
//                                    the reset); otherwise a normal 200 with N body bytes (default N 1000)
//   /redirect?n=3                    302 to /redirect?n=2 ... /redirect?n=1 redirects to /ok (n redirects, then
//                                    200 "ok"; n=0 answers like /ok); Location is a relative path
//   /garbage                         bytes that are not HTTP, then the connection closes
//   /echo                            200 with the request body (and its Content-Type)
//   /headers                         200 JSON {method, target, version, headers: [[name, value]...],
//                                    connection_id, index_on_connection}
//   /set-cookie?name=A&value=B       200 "ok" with Set-Cookie: A=B; Path=/
//   anything else                    404
// Parameters every behaviour but /garbage and /reset-after accepts: delay_ms=N (wait before answering; for
// /delay it adds to ms) and close=1 (answer with Connection: close and close).
//
// Control endpoints (never counted in the statistics): GET /__stats (JSON below), POST /__reset (zeroes the
// counters and the per-behaviour sequences: sleep-seq index, freeze clock, reset-after count).
//   {"connections_accepted": n,      // TCP connections accepted since the reset, except those whose first
//                                    // request was a control request
//    "connections_with_requests": n, // connections that carried at least one counted request
//    "connections_open": n,          // currently open (a gauge; includes the one asking)
//    "requests_received": n, "responses_completed": n,
//    "responses_broken": n,          // /reset-after resets and /garbage
//    "client_gone": n,               // answers not sent because the client had gone
//    "body_bytes_written": n,        // payload bytes only: no heads, no chunk framing
//    "in_flight": n, "max_in_flight": n,
//    "requests_by_path": {"/ok": n, ...},
//    "core": {"connections_accepted", "requests_received", "responses_completed", "bytes_written",
//             "protocol_errors"}}    // the server core's own counters since the reset, control traffic included
//
// Threading: lives on the thread that created it; not thread-safe. Never blocks (delays are timers).
#include "userflux/httpserver.h"

#include <QElapsedTimer>
#include <QHostAddress>
#include <QMap>
#include <QObject>
#include <QSet>
#include <QUrl>

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>

namespace Userflux::Test {

struct ScriptableStats {
    quint64 connectionsAccepted = 0;
    quint64 connectionsWithRequests = 0;
    quint64 connectionsOpen = 0;
    quint64 requestsReceived = 0;
    quint64 responsesCompleted = 0;
    quint64 responsesBroken = 0;
    quint64 clientGone = 0;
    quint64 bodyBytesWritten = 0;
    quint64 inFlight = 0;
    quint64 maxInFlight = 0;
    QMap<QString, quint64> requestsByPath;
};

class ScriptableServer : public QObject {
    Q_OBJECT
public:
    explicit ScriptableServer(QObject *parent = nullptr);
    ~ScriptableServer() override;

    bool listen(const QHostAddress &address = QHostAddress::LocalHost, quint16 port = 0);
    quint16 port() const;
    QString errorString() const;
    // "http://127.0.0.1:PORT" + pathAndQuery (which starts with '/').
    QUrl url(const QString &pathAndQuery = QStringLiteral("/")) const;

    ScriptableStats stats() const;
    nlohmann::json statsJson() const;
    // Same as POST /__reset.
    void reset();

    // The underlying server core (e.g. to set limits or the idle timeout).
    Http::Server &server();

private:
    struct Exchange;
    void handle(const Http::Request &request, Http::Responder responder);
    void behave(const std::shared_ptr<Exchange> &x);
    void later(qint64 ms, std::function<void()> fn);
    void held(std::function<void()> fn);
    qint64 freezeRemaining() const;
    void sendCounted(const std::shared_ptr<Exchange> &x, Http::Response response);
    void writeBody(const std::shared_ptr<Exchange> &x, const QByteArray &head, const QByteArray &payload);
    void complete(const std::shared_ptr<Exchange> &x, bool closeAfter);
    void broken(const std::shared_ptr<Exchange> &x);
    bool settle(const std::shared_ptr<Exchange> &x);

    std::unique_ptr<Http::Server> m_server;
    QElapsedTimer m_clock;
    quint64 m_generation = 0;

    // Sequences, reset by reset().
    quint64 m_sleepSeq = 0;
    quint64 m_resetAfterSeq = 0;
    qint64 m_freezeStart = -1;
    qint64 m_freezeAt = 0;
    qint64 m_freezeFor = 0;

    // Counters since the last reset.
    ScriptableStats m_stats;
    Http::ServerStats m_coreBaseline;
    quint64 m_connectionBaseline = 0;
    quint64 m_controlConnections = 0;
    QSet<quint64> m_connectionsWithRequests;
};

} // namespace Userflux::Test
