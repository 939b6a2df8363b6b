#pragma once
// A small HTTP/1.1 server core on QTcpServer, shared by the daemon's control API, the demo gateway and the
// tests' scriptable server. QHttpServer 6.4 cannot express what a test server needs (no length, late chunks,
// resets mid-body) nor delay responses without blocking a pool thread, hence this core.
//
// Threading: a Server and everything it hands out live on the thread that created the Server; handlers run on
// it. Not thread-safe.
#include <QByteArray>
#include <QHostAddress>
#include <QList>
#include <QObject>
#include <QPair>
#include <QPointer>
#include <QString>
#include <QUrlQuery>

#include <functional>
#include <memory>

class QTcpServer;
class QTcpSocket;

namespace Userflux::Http {

using Headers = QList<QPair<QByteArray, QByteArray>>;

struct Request {
    QByteArray method;           // "GET"
    QByteArray target;           // raw request target: "/api/items?page=2"
    QString path;                // percent-decoded path: "/api/items"
    QUrlQuery query;
    QByteArray version;          // "HTTP/1.1"
    Headers headers;             // as received
    QByteArray body;             // Content-Length or chunked request bodies are read whole
    QHostAddress peer;
    quint64 connectionId = 0;    // 1-based, per server
    int indexOnConnection = 0;   // 0 for the first request of a connection

    QByteArray header(const QByteArray &name) const; // case-insensitive; empty when absent
};

struct Response {
    int status = 200;
    Headers headers;             // Content-Length is added by send() unless present or framing says otherwise
    QByteArray body;
    bool close = false;          // send "Connection: close" and close after the response
};

class Connection;

// A handle on the connection a request arrived on. Copyable; every method is a no-op once the connection is
// gone (isConnected() tells). Exactly one response should be sent per request; pipelined requests are answered
// in order (a later request is not handed to the handler until the earlier one has been answered).
// A Responder handed to the handler is bound to its request: once that request has been answered, send(),
// writeRaw() and finish() on it (or a copy) are ignored, so a late or duplicate answer can never be taken for
// the answer to the next pipelined request. Never blocks: writes are buffered and flushed by the event loop.
class Responder {
public:
    Responder() = default;
    // `sequence` binds the responder to one request of the connection (0: whichever request is current).
    explicit Responder(std::shared_ptr<Connection> connection, quint64 sequence = 0);

    bool isConnected() const;
    // Sends a complete response (adds Content-Length and Connection headers).
    void send(const Response &response);
    // Convenience: a JSON body with Content-Type application/json.
    void sendJson(int status, const QByteArray &json, const Headers &extraHeaders = {});

    // Low level, for test servers that misbehave on purpose. writeRaw() writes bytes as they are; finish()
    // marks the current request answered (so the next pipelined one may be served); close() closes gracefully
    // after pending bytes are written; abort() resets the connection (RST).
    // abort() first hands bytes already written to the kernel, so the peer sees them and then the reset.
    void writeRaw(const QByteArray &bytes);
    void finish(bool closeAfter = false);
    void close();
    void abort();

private:
    std::shared_ptr<Connection> m_connection;
    quint64 m_sequence = 0;
};

// Counters since the server was created; exact (each event is counted once, on the server's thread).
struct ServerStats {
    quint64 connectionsAccepted = 0;
    // Complete requests parsed. A request whose connection goes away before it is answered (a client that
    // pipelines and hangs up, a handler that never answers) is received but never completed.
    quint64 requestsReceived = 0;
    quint64 responsesCompleted = 0; // responses fully handed to the socket (send() or finish())
    quint64 bytesWritten = 0;       // bytes handed to sockets (heads and bodies)
    // Requests the core answered itself (400 malformed, 413/431 over a limit, 501/505 unsupported); they are
    // also counted in requestsReceived and responsesCompleted, so both stay equal once everything is answered.
    quint64 protocolErrors = 0;
    quint64 connectionsOpen = 0;
};

// Listens, accepts, parses and hands each request to the handler on this thread. Destroying the Server aborts
// its connections; Responders that outlive it become no-ops.
class Server : public QObject {
    Q_OBJECT
public:
    using Handler = std::function<void(const Request &, Responder)>;

    explicit Server(QObject *parent = nullptr);
    ~Server() override;

    void setHandler(Handler handler);
    // Limits: request head and body size (defaults 64 KiB, 16 MiB); a request over them gets 431/413 and the
    // connection closes.
    void setMaxRequestSize(qint64 headBytes, qint64 bodyBytes);
    // Closes idle keep-alive connections after `ms` (default 60 s); 0 disables.
    void setIdleTimeout(int ms);

    // Port 0 picks a free port (port() tells which). Returns false with errorString() on failure.
    bool listen(const QHostAddress &address = QHostAddress::LocalHost, quint16 port = 0);
    quint16 port() const;
    QHostAddress address() const;
    QString errorString() const;
    // Stops listening and closes every connection (responses still pending are dropped).
    void close();

    const ServerStats &stats() const;

private:
    friend class Connection;
    struct Private;
    std::unique_ptr<Private> d;
};

} // namespace Userflux::Http
