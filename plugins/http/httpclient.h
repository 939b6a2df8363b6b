#pragma once
#include <userflux/plugin.h>

#include <QHash>
#include <QNetworkAccessManager>
#include <QNetworkRequest>
#include <QObject>
#include <QSslConfiguration>

#include <memory>
#include <vector>

class QNetworkReply;
class QTcpSocket;
class QTimer;

namespace Userflux::Plugins {

// The http plugin's client: cleartext HTTP/1.1 (http:// with http_version "auto" or "1.1") goes through
// Http1Client, our own small engine on QTcpSocket; everything else (https://, HTTP/2, h2c) goes through
// QnamClient, on QNetworkAccessManager.
//
// Why not QNAM for cleartext HTTP/1.1: Qt 6.4's QNAM silently re-sends a request it has already finished when a
// body is framed by the connection's close (no Content-Length, no chunking) and the response was already in the
// socket when the request had been written (a fast server): the response is then read while the channel is still
// "waiting", the close lands in QHttpNetworkConnectionChannel::_q_error(RemoteHostClosedError) as if the request
// had never been answered, resendCurrent is set, allDone() keeps the finished request, and _q_startNextRequest
// writes it again on a new connection (POSTs included). Nothing of this reaches the QNetworkReply (no
// requestSent(), no error), so it can be neither prevented nor counted: against a close-delimited server 100
// requests reached the server as 108 to 137 requests on up to 147 connections. Our engine sends each request
// exactly once, except the one re-send it makes on its own: a request written on a reused keep-alive connection
// that the server had closed before any byte of the response came back (idempotent methods only, once), counted
// in retries() as the run contract asks.
class HttpClient final : public QObject, public IProtocolClient {
    Q_OBJECT
public:
    explicit HttpClient(const nlohmann::json &config);
    ~HttpClient() override;

    quint64 send(ProtocolRequest request, Callback done) override;
    void cancel(quint64 handle) override;
    qint64 retries() const override;

private:
    bool useHttp1(const QUrl &url) const;

    nlohmann::json m_config;
    bool m_http1Allowed = true;                // http_version is "auto" or "1.1"
    std::unique_ptr<IProtocolClient> m_http1;  // created on first use
    std::unique_ptr<IProtocolClient> m_qnam;   // created on first use
    struct Route {
        IProtocolClient *engine = nullptr;
        quint64 inner = 0;
    };
    QHash<quint64, Route> m_routes;            // our handle -> the engine's
    quint64 m_nextHandle = 1;
};

// Cleartext HTTP/1.1 on QTcpSocket, bound to one worker thread. Each vUser (affinity) keeps its own keep-alive
// connections (one per host:port), so a vUser never shares a connection with another, as a real user would not.
// Responses are framed as RFC 9112 says: no body for HEAD, 1xx, 204 and 304 whatever Content-Length says;
// chunked; Content-Length; else until the server closes. Interim 1xx responses are skipped. A connection is
// reused only when the response said keep-alive, was complete, and nothing unexpected followed it; before reuse
// it is checked for a close that arrived while it was idle. No proxy, no compression (the body is counted as
// it comes on the wire), no cookies and no redirects (the core does those).
class Http1Client final : public QObject, public IProtocolClient {
    Q_OBJECT
public:
    Http1Client();
    ~Http1Client() override;

    quint64 send(ProtocolRequest request, Callback done) override;
    void cancel(quint64 handle) override;
    qint64 retries() const override { return m_retries; }

private:
    struct Connection;
    struct Exchange;

    void start(Exchange *x);
    Connection *takeIdle(quint64 affinity, const QByteArray &key);
    Connection *open(Exchange *x);
    void writeRequest(Connection *c);
    void onReadyRead(Connection *c);
    void onClosed(Connection *c);
    void onSocketError(Connection *c);
    void parse(Connection *c);
    void consumeBody(Exchange *x, QByteArray &buffer, qint64 n);
    void complete(Exchange *x);
    void fail(Exchange *x, ErrorKind kind, const QString &message);
    void deliver(Exchange *x);
    void release(Connection *c, bool reusable);
    void destroy(Connection *c);
    void abortWith(quint64 handle, ErrorKind kind);

    QHash<quint64, Exchange *> m_exchanges;                 // in flight, by handle
    QHash<quint64, std::vector<Connection *>> m_idle;      // idle keep-alive connections, by affinity
    std::vector<Connection *> m_busy;                       // connections carrying an exchange
    quint64 m_nextHandle = 1;
    qint64 m_retries = 0;
};

// A protocol client on QNetworkAccessManager (QNAM), bound to one worker thread.
//
// QNAM facts this works around (see docs/ARCHITECTURE.md): at most 6 HTTP/1.1 connections per host per manager,
// so vUsers are spread over several managers, at most 6 per manager; proxies from the environment, automatic
// redirects and the shared cookie jar are all switched off (the core follows redirects hop by hop and keeps
// cookies per vUser); QNAM has no whole-request timeout and cleartext HTTP/2 by prior knowledge hangs against an
// HTTP/1.1-only server, so every request has its own deadline timer; an abort surfaces as
// OperationCanceledError whatever its cause, so the client remembers why it aborted. See HttpClient for why
// cleartext HTTP/1.1 does not go through QNAM.
class QnamClient final : public QObject, public IProtocolClient {
    Q_OBJECT
public:
    explicit QnamClient(const nlohmann::json &config);
    ~QnamClient() override;

    quint64 send(ProtocolRequest request, Callback done) override;
    void cancel(quint64 handle) override;

private:
    struct InFlight {
        QNetworkReply *reply = nullptr;
        QTimer *deadline = nullptr;
        Callback done;
        ProtocolResponse response;
        bool wantBody = false;
        ErrorKind abortReason = ErrorKind::None;
        bool h2c = false;
        bool sawHeaders = false;
    };

    QNetworkAccessManager *managerFor(quint64 affinity);
    void onFinished(quint64 handle);
    void abortWith(quint64 handle, ErrorKind reason);

    enum class Version { Auto, Http11, Http2, H2c };
    Version m_version = Version::Auto;
    bool m_tlsVerify = true;
    QSslConfiguration m_ssl;
    std::vector<QNetworkAccessManager *> m_managers;
    std::vector<int> m_managerLoad;           // vUsers assigned to each manager
    QHash<quint64, int> m_affinity;           // vUser -> manager index
    QHash<quint64, InFlight *> m_inflight;
    quint64 m_nextHandle = 1;
};

class HttpProtocolPlugin : public QObject, public IProtocolPlugin {
    Q_OBJECT
    Q_PLUGIN_METADATA(IID UserfluxProtocolPlugin_iid FILE "http.json")
    Q_INTERFACES(Userflux::IProtocolPlugin)
public:
    ConfigErrors validate(const nlohmann::json &config) const override;
    std::unique_ptr<IProtocolClient> createClient(const ProtocolOptions &options) override;
};

} // namespace Userflux::Plugins
