#include "httpclient.h"

#include <userflux/configcheck.h>

#include <QFile>
#include <QNetworkProxy>
#include <QNetworkReply>
#include <QSslCertificate>
#include <QTcpSocket>
#include <QTimer>

#include <sys/socket.h>
#include <sys/types.h>

#include <algorithm>
#include <cerrno>

namespace Userflux::Plugins {

using nlohmann::json;

namespace {

// Managers share their vUsers' connections: 6 vUsers per manager keeps one vUser to (at most) one connection,
// which is both what a real user does and what QNAM's 6-connection limit allows.
constexpr int kVusPerManager = 6;

// Transport failures that can happen after a status line arrived (the exchange still failed).
bool isTransportFailure(QNetworkReply::NetworkError e)
{
    switch (e) {
    case QNetworkReply::RemoteHostClosedError:
    case QNetworkReply::TimeoutError:
    case QNetworkReply::TemporaryNetworkFailureError:
    case QNetworkReply::NetworkSessionFailedError:
    case QNetworkReply::UnknownNetworkError:
    case QNetworkReply::ProtocolFailure:
    case QNetworkReply::SslHandshakeFailedError: return true;
    default: return false;
    }
}

ErrorKind classify(QNetworkReply::NetworkError e)
{
    switch (e) {
    case QNetworkReply::ConnectionRefusedError: return ErrorKind::ConnectRefused;
    case QNetworkReply::RemoteHostClosedError: return ErrorKind::Reset;
    case QNetworkReply::HostNotFoundError: return ErrorKind::Dns;
    case QNetworkReply::TimeoutError: return ErrorKind::ConnectTimeout;
    case QNetworkReply::SslHandshakeFailedError: return ErrorKind::Tls;
    case QNetworkReply::ProtocolUnknownError:
    case QNetworkReply::ProtocolInvalidOperationError:
    case QNetworkReply::ProtocolFailure:
    case QNetworkReply::InsecureRedirectError: return ErrorKind::Protocol;
    default: break;
    }
    // Errors that come with an HTTP status (4xx/5xx) are not transport errors: the core classifies the status.
    if ((e >= QNetworkReply::ContentAccessDenied && e <= QNetworkReply::UnknownContentError)
        || (e >= QNetworkReply::InternalServerError && e <= QNetworkReply::UnknownServerError))
        return ErrorKind::None;
    return ErrorKind::Other;
}

} // namespace

QnamClient::QnamClient(const json &config)
{
    const json &target = config.at("target");
    const std::string v = target.value("http_version", std::string("auto"));
    m_version = v == "1.1" ? Version::Http11 : v == "2" ? Version::Http2 : v == "h2c" ? Version::H2c : Version::Auto;
    m_ssl = QSslConfiguration::defaultConfiguration();
    if (target.contains("tls")) {
        m_tlsVerify = target["tls"].value("verify", true);
        if (target["tls"].contains("ca_file") && target["tls"]["ca_file"].is_string()) {
            const auto certs = QSslCertificate::fromPath(QString::fromStdString(target["tls"]["ca_file"].get<std::string>()));
            m_ssl.addCaCertificates(certs);
        }
    }
    if (!m_tlsVerify)
        m_ssl.setPeerVerifyMode(QSslSocket::VerifyNone);
    if (m_version == Version::Http2)
        m_ssl.setAllowedNextProtocols({QSslConfiguration::ALPNProtocolHTTP2});
}

QnamClient::~QnamClient()
{
    // Abort what is left without calling back: the executor only destroys a client once its vUsers are gone.
    for (InFlight *f : std::as_const(m_inflight)) {
        f->reply->disconnect(this);
        f->reply->abort();
        f->reply->deleteLater();
        delete f->deadline;
        delete f;
    }
    m_inflight.clear();
    qDeleteAll(m_managers);
}

QNetworkAccessManager *QnamClient::managerFor(quint64 affinity)
{
    auto it = m_affinity.constFind(affinity);
    if (it != m_affinity.constEnd())
        return m_managers[size_t(*it)];
    int index = -1;
    for (size_t i = 0; i < m_managers.size(); ++i)
        if (m_managerLoad[i] < kVusPerManager) {
            index = int(i);
            break;
        }
    if (index < 0) {
        auto *m = new QNetworkAccessManager;
        m->setProxy(QNetworkProxy::NoProxy);          // never http_proxy from the environment
        m->setRedirectPolicy(QNetworkRequest::ManualRedirectPolicy);
        m->setAutoDeleteReplies(false);
        m_managers.push_back(m);
        m_managerLoad.push_back(0);
        index = int(m_managers.size() - 1);
    }
    ++m_managerLoad[size_t(index)];
    m_affinity.insert(affinity, index);
    return m_managers[size_t(index)];
}

quint64 QnamClient::send(ProtocolRequest request, Callback done)
{
    const quint64 handle = m_nextHandle++;
    auto *f = new InFlight;
    f->done = std::move(done);
    f->wantBody = request.wantBody;
    f->response.start = MonoClock::now();
    f->response.firstByte = f->response.start;
    f->response.bytesSent = request.body.size();

    QNetworkRequest req(request.url);
    for (const auto &h : std::as_const(request.headers))
        req.setRawHeader(h.first, h.second);
    req.setAttribute(QNetworkRequest::RedirectPolicyAttribute, QNetworkRequest::ManualRedirectPolicy);
    req.setAttribute(QNetworkRequest::CookieLoadControlAttribute, QNetworkRequest::Manual);
    req.setAttribute(QNetworkRequest::CookieSaveControlAttribute, QNetworkRequest::Manual);
    req.setAttribute(QNetworkRequest::CacheLoadControlAttribute, QNetworkRequest::AlwaysNetwork);
    req.setAttribute(QNetworkRequest::CacheSaveControlAttribute, false);
    const bool tls = request.url.scheme() == QLatin1String("https");
    switch (m_version) {
    case Version::Http11: req.setAttribute(QNetworkRequest::Http2AllowedAttribute, false); break;
    case Version::Http2: req.setAttribute(QNetworkRequest::Http2AllowedAttribute, true); break;
    case Version::H2c:
        req.setAttribute(QNetworkRequest::Http2AllowedAttribute, true);
        req.setAttribute(QNetworkRequest::Http2DirectAttribute, true);
        f->h2c = true;
        break;
    case Version::Auto: req.setAttribute(QNetworkRequest::Http2AllowedAttribute, tls); break;
    }
    if (tls)
        req.setSslConfiguration(m_ssl);
    // The whole-request deadline is ours (QNAM's transferTimeout is an inactivity timeout, and a trickling server
    // never trips it).
    req.setTransferTimeout(0);

    QNetworkAccessManager *manager = managerFor(request.affinity);
    // QNAM knows HEAD semantics (no body, whatever Content-Length says) only through head(): a custom "HEAD"
    // would wait for the advertised body until the deadline.
    QNetworkReply *reply = nullptr;
    if (request.method == "HEAD")
        reply = manager->head(req);
    else if (request.method == "GET" && request.body.isEmpty())
        reply = manager->get(req);
    else if (request.body.isEmpty() && request.method == "DELETE")
        reply = manager->deleteResource(req);
    else
        reply = manager->sendCustomRequest(req, request.method, request.body);
    f->reply = reply;
    m_inflight.insert(handle, f);

    if (tls && !m_tlsVerify)
        connect(reply, &QNetworkReply::sslErrors, reply, [reply](const QList<QSslError> &) { reply->ignoreSslErrors(); });
    connect(reply, &QNetworkReply::metaDataChanged, this, [this, handle] {
        InFlight *f = m_inflight.value(handle);
        if (f && !f->sawHeaders) {
            f->sawHeaders = true;
            f->response.firstByte = MonoClock::now();
        }
    });
    connect(reply, &QNetworkReply::readyRead, this, [this, handle] {
        InFlight *f = m_inflight.value(handle);
        if (!f)
            return;
        const QByteArray chunk = f->reply->readAll();
        f->response.bytesReceived += chunk.size();
        if (f->wantBody)
            f->response.body += chunk;
    });
    connect(reply, &QNetworkReply::finished, this, [this, handle] { onFinished(handle); });

    f->deadline = new QTimer;
    f->deadline->setSingleShot(true);
    f->deadline->setTimerType(Qt::PreciseTimer);
    connect(f->deadline, &QTimer::timeout, this, [this, handle] { abortWith(handle, ErrorKind::Timeout); });
    f->deadline->start(request.timeout);
    return handle;
}

void QnamClient::abortWith(quint64 handle, ErrorKind reason)
{
    InFlight *f = m_inflight.value(handle);
    if (!f || f->abortReason != ErrorKind::None)
        return;
    f->abortReason = reason;
    f->reply->abort(); // emits finished() synchronously: onFinished() completes the request
}

void QnamClient::cancel(quint64 handle)
{
    // Deferred: abort() calls back synchronously, and the SDK promises callbacks never run inside the caller.
    if (!m_inflight.contains(handle))
        return;
    QMetaObject::invokeMethod(this, [this, handle] { abortWith(handle, ErrorKind::Interrupted); }, Qt::QueuedConnection);
}

void QnamClient::onFinished(quint64 handle)
{
    InFlight *f = m_inflight.take(handle);
    if (!f)
        return;
    QNetworkReply *reply = f->reply;
    ProtocolResponse &r = f->response;
    r.end = MonoClock::now();
    // Whatever is left in the buffer still counts.
    if (reply->bytesAvailable() > 0) {
        const QByteArray rest = reply->readAll();
        r.bytesReceived += rest.size();
        if (f->wantBody)
            r.body += rest;
    }
    const QVariant status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute);
    r.status = status.isValid() ? status.toInt() : 0;
    if (r.status > 0) {
        r.protocol = reply->attribute(QNetworkRequest::Http2WasUsedAttribute).toBool() ? QByteArrayLiteral("h2")
                                                                                       : QByteArrayLiteral("http/1.1");
        const auto pairs = reply->rawHeaderPairs();
        r.headers.reserve(pairs.size());
        for (const auto &p : pairs)
            r.headers.append({p.first, p.second});
    }
    const QNetworkReply::NetworkError e = reply->error();
    if (f->abortReason != ErrorKind::None) {
        r.error = f->abortReason;
        if (f->abortReason == ErrorKind::Timeout) {
            r.errorMessage = f->h2c && !f->sawHeaders
                ? QStringLiteral("no response within the timeout (h2c: the server may not speak cleartext HTTP/2)")
                : QStringLiteral("no complete response within the timeout");
        } else {
            r.errorMessage = QStringLiteral("interrupted by the end of the run");
        }
        r.status = f->abortReason == ErrorKind::Timeout ? r.status : r.status;
    } else if (e != QNetworkReply::NoError && r.status > 0 && !isTransportFailure(e)) {
        // QNAM turns HTTP statuses into errors (400 even into ProtocolInvalidOperationError): a complete
        // response is not a transport error, whatever its status; the core classifies the status.
        r.error = ErrorKind::None;
    } else if (e != QNetworkReply::NoError) {
        r.error = classify(e);
        if (r.error != ErrorKind::None)
            r.errorMessage = reply->errorString();
        // A connection closed mid-body after the headers: a reset, whatever QNAM calls it.
        if (r.error == ErrorKind::Other && r.status > 0)
            r.error = ErrorKind::Reset;
        // h2c by prior knowledge to a server that does not speak it fails in QNAM's HTTP/2 framing ("failed to
        // send HEADERS frame(s)", "unknown network error"): that is the server not speaking the protocol.
        if (f->h2c && !f->sawHeaders && (r.error == ErrorKind::Other || r.error == ErrorKind::Reset))
            r.error = ErrorKind::Protocol;
    }
    // A failed exchange has no valid status: transport errors carry none (sum(status_codes) counts responses).
    if (r.error != ErrorKind::None)
        r.status = 0, r.protocol.clear();
    f->deadline->stop();
    f->deadline->deleteLater();
    reply->disconnect(this);
    reply->deleteLater();
    Callback done = std::move(f->done);
    ProtocolResponse response = std::move(f->response);
    delete f;
    done(std::move(response));
}

// ---------------------------------------------------------------------------------------------------------------
// HttpClient: routes each request to the engine for its scheme and version.

HttpClient::HttpClient(const json &config)
    : m_config(config)
{
    const std::string v = config.at("target").value("http_version", std::string("auto"));
    m_http1Allowed = v == "auto" || v == "1.1";
}

HttpClient::~HttpClient() = default;

bool HttpClient::useHttp1(const QUrl &url) const
{
    return m_http1Allowed && url.scheme() == QLatin1String("http");
}

quint64 HttpClient::send(ProtocolRequest request, Callback done)
{
    IProtocolClient *engine = nullptr;
    if (useHttp1(request.url)) {
        if (!m_http1)
            m_http1 = std::make_unique<Http1Client>();
        engine = m_http1.get();
    } else {
        if (!m_qnam)
            m_qnam = std::make_unique<QnamClient>(m_config);
        engine = m_qnam.get();
    }
    const quint64 handle = m_nextHandle++;
    const quint64 inner = engine->send(std::move(request), [this, handle, done = std::move(done)](ProtocolResponse &&r) {
        m_routes.remove(handle);
        done(std::move(r));
    });
    m_routes.insert(handle, Route{engine, inner});
    return handle;
}

void HttpClient::cancel(quint64 handle)
{
    const auto it = m_routes.constFind(handle);
    if (it != m_routes.constEnd())
        it->engine->cancel(it->inner);
}

qint64 HttpClient::retries() const
{
    return (m_http1 ? m_http1->retries() : 0) + (m_qnam ? m_qnam->retries() : 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Http1Client

namespace {

constexpr qsizetype kMaxHeadBytes = 256 * 1024;   // status line + headers
constexpr qsizetype kMaxChunkLine = 4096;          // a chunk-size line (with extensions) or a trailer line
constexpr size_t kMaxIdlePerVu = 4;                // idle connections a vUser keeps (one per host it talks to)

bool idempotent(const QByteArray &method)
{
    return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" || method == "OPTIONS"
           || method == "TRACE";
}

// Whether a comma-separated header value holds token (case-insensitive), e.g. "close" in "Connection: close".
bool hasToken(const QByteArray &value, const char *token)
{
    const QByteArray t(token);
    for (const QByteArray &part : value.split(','))
        if (part.trimmed().compare(t, Qt::CaseInsensitive) == 0)
            return true;
    return false;
}

// Index just past the end of the line starting at `from` (LF or CRLF), or -1 when no whole line is buffered;
// `lineEnd` gets the index where the line's content ends.
qsizetype lineAfter(const QByteArray &buffer, qsizetype from, qsizetype *lineEnd)
{
    const qsizetype lf = buffer.indexOf('\n', from);
    if (lf < 0)
        return -1;
    *lineEnd = lf > from && buffer.at(lf - 1) == '\r' ? lf - 1 : lf;
    return lf + 1;
}

} // namespace

struct Http1Client::Exchange {
    enum class Phase { Connecting, Head, Body };
    enum class Framing { None, Length, Chunked, Close };
    enum class Chunk { Size, Data, DataEnd, Trailer };

    quint64 handle = 0;
    ProtocolRequest request;
    Callback done;
    ProtocolResponse response;
    QTimer *deadline = nullptr;
    Connection *conn = nullptr;
    QByteArray wire;             // the serialized request
    QByteArray key;              // "host:port"
    bool closeAfter = false;     // the request itself asked for Connection: close
    bool retried = false;
    bool finished = false;

    // Parser state.
    Phase phase = Phase::Connecting;
    Framing framing = Framing::None;
    Chunk chunk = Chunk::Size;
    qint64 remaining = 0;        // Length: body bytes still due; Chunked: bytes left in the current chunk
    bool sawResponseBytes = false;
    bool keepAlive = false;
};

struct Http1Client::Connection {
    QTcpSocket *socket = nullptr;
    quint64 affinity = 0;
    QByteArray key;
    bool connected = false;
    bool reused = false;         // it already carried a whole exchange: a close before any response is "stale"
    Exchange *exchange = nullptr;
    QByteArray buffer;           // received, not yet parsed
};

Http1Client::Http1Client() = default;

Http1Client::~Http1Client()
{
    // Abort what is left without calling back: the executor only destroys a client once its vUsers are gone.
    for (Exchange *x : std::as_const(m_exchanges)) {
        delete x->deadline;
        delete x;
    }
    m_exchanges.clear();
    for (Connection *c : std::as_const(m_busy)) {
        c->socket->disconnect(this);
        c->socket->abort();
        delete c->socket;
        delete c;
    }
    for (auto &list : m_idle)
        for (Connection *c : list) {
            c->socket->disconnect(this);
            c->socket->abort();
            delete c->socket;
            delete c;
        }
}

quint64 Http1Client::send(ProtocolRequest request, Callback done)
{
    auto *x = new Exchange;
    x->handle = m_nextHandle++;
    x->done = std::move(done);
    x->response.start = MonoClock::now();
    x->response.firstByte = x->response.start;
    x->response.bytesSent = request.body.size();

    const QUrl &url = request.url;
    QByteArray host = url.host(QUrl::FullyEncoded).toUtf8();
    if (host.contains(':'))
        host = '[' + host + ']';
    const int port = url.port(80);
    x->key = host + ':' + QByteArray::number(port);
    QByteArray target = url.toEncoded(QUrl::RemoveScheme | QUrl::RemoveAuthority | QUrl::RemoveFragment);
    if (target.isEmpty())
        target = "/";
    else if (!target.startsWith('/'))
        target.prepend('/');

    QByteArray wire;
    wire.reserve(256 + request.body.size());
    wire += request.method + ' ' + target + " HTTP/1.1\r\n";
    bool hasHost = false;
    for (const auto &h : std::as_const(request.headers)) {
        // The body's framing is ours to say.
        if (h.first.compare("Content-Length", Qt::CaseInsensitive) == 0
            || h.first.compare("Transfer-Encoding", Qt::CaseInsensitive) == 0)
            continue;
        if (h.first.compare("Host", Qt::CaseInsensitive) == 0)
            hasHost = true;
        if (h.first.compare("Connection", Qt::CaseInsensitive) == 0 && hasToken(h.second, "close"))
            x->closeAfter = true;
    }
    if (!hasHost)
        wire += "Host: " + (port == 80 ? host : x->key) + "\r\n";
    for (const auto &h : std::as_const(request.headers)) {
        if (h.first.compare("Content-Length", Qt::CaseInsensitive) == 0
            || h.first.compare("Transfer-Encoding", Qt::CaseInsensitive) == 0)
            continue;
        wire += h.first + ": " + h.second + "\r\n";
    }
    if (!request.body.isEmpty() || request.method == "POST" || request.method == "PUT" || request.method == "PATCH")
        wire += "Content-Length: " + QByteArray::number(request.body.size()) + "\r\n";
    wire += "\r\n";
    wire += request.body;
    x->wire = std::move(wire);
    x->request = std::move(request);

    x->deadline = new QTimer;
    x->deadline->setSingleShot(true);
    x->deadline->setTimerType(Qt::PreciseTimer);
    const quint64 handle = x->handle;
    connect(x->deadline, &QTimer::timeout, this, [this, handle] {
        Exchange *e = m_exchanges.value(handle);
        if (e)
            abortWith(handle, e->phase == Exchange::Phase::Connecting ? ErrorKind::ConnectTimeout : ErrorKind::Timeout);
    });
    x->deadline->start(x->request.timeout);
    m_exchanges.insert(handle, x);
    start(x);
    return handle;
}

// Puts the exchange on a connection: a live idle one of this vUser to the same host, else a new one.
void Http1Client::start(Exchange *x)
{
    x->phase = Exchange::Phase::Connecting;
    x->framing = Exchange::Framing::None;
    x->chunk = Exchange::Chunk::Size;
    x->remaining = 0;
    x->sawResponseBytes = false;
    x->keepAlive = false;
    Connection *c = takeIdle(x->request.affinity, x->key);
    if (!c) {
        c = open(x);
        return; // writeRequest() once connected
    }
    c->exchange = x;
    x->conn = c;
    m_busy.push_back(c);
    writeRequest(c);
}

Http1Client::Connection *Http1Client::takeIdle(quint64 affinity, const QByteArray &key)
{
    auto it = m_idle.find(affinity);
    if (it == m_idle.end())
        return nullptr;
    std::vector<Connection *> &list = *it;
    for (auto i = list.begin(); i != list.end(); ++i) {
        Connection *c = *i;
        if (c->key != key)
            continue;
        list.erase(i);
        // A close (or stray bytes) that arrived while it was idle and the event loop has not handled yet: peek at
        // the socket itself rather than write a request the server will never read.
        bool alive = c->socket->state() == QAbstractSocket::ConnectedState && c->socket->bytesAvailable() == 0
                     && c->buffer.isEmpty();
        if (alive) {
            char byte;
            const ssize_t n = ::recv(int(c->socket->socketDescriptor()), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            alive = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        }
        if (!alive) {
            destroy(c);
            return nullptr;
        }
        return c;
    }
    return nullptr;
}

Http1Client::Connection *Http1Client::open(Exchange *x)
{
    auto *c = new Connection;
    c->affinity = x->request.affinity;
    c->key = x->key;
    c->socket = new QTcpSocket;
    c->socket->setProxy(QNetworkProxy::NoProxy); // never http_proxy from the environment
    c->exchange = x;
    x->conn = c;
    m_busy.push_back(c);
    QTcpSocket *socket = c->socket;
    connect(socket, &QTcpSocket::connected, this, [this, c] {
        c->connected = true;
        c->socket->setSocketOption(QAbstractSocket::LowDelayOption, 1);
        if (c->exchange)
            writeRequest(c);
    });
    connect(socket, &QTcpSocket::readyRead, this, [this, c] { onReadyRead(c); });
    connect(socket, &QTcpSocket::disconnected, this, [this, c] { onClosed(c); });
    connect(socket, &QTcpSocket::errorOccurred, this, [this, c](QAbstractSocket::SocketError) { onSocketError(c); });
    socket->connectToHost(x->request.url.host(), quint16(x->request.url.port(80)));
    return c;
}

void Http1Client::writeRequest(Connection *c)
{
    Exchange *x = c->exchange;
    x->phase = Exchange::Phase::Head;
    c->socket->write(x->wire);
}

void Http1Client::onReadyRead(Connection *c)
{
    c->buffer += c->socket->readAll();
    if (!c->exchange) {
        // Bytes nobody asked for on an idle connection: it cannot carry another exchange.
        release(c, false);
        return;
    }
    parse(c);
}

// The server closed the connection (or it broke): the end of a close-delimited body, a stale keep-alive
// connection, or a response cut short.
void Http1Client::onClosed(Connection *c)
{
    if (c->socket->bytesAvailable() > 0)
        c->buffer += c->socket->readAll();
    Exchange *x = c->exchange;
    if (!x) {
        release(c, false);
        return;
    }
    const quint64 handle = x->handle;
    if (!c->buffer.isEmpty()) {
        parse(c);
        if (!m_exchanges.contains(handle))
            return; // the buffered bytes completed (or failed) it, and released the connection
    }
    if (x->phase == Exchange::Phase::Body && x->framing == Exchange::Framing::Close) {
        complete(x);
        return;
    }
    if (x->phase == Exchange::Phase::Connecting) {
        fail(x, ErrorKind::Other, QStringLiteral("connection closed while connecting"));
        return;
    }
    if (!x->sawResponseBytes && c->reused && !x->retried && idempotent(x->request.method)) {
        // A keep-alive connection the server had closed while it was idle: send the request once more, on a
        // new connection, and count it.
        x->retried = true;
        ++m_retries;
        x->conn = nullptr;
        c->exchange = nullptr;
        release(c, false);
        start(x);
        return;
    }
    fail(x, ErrorKind::Reset,
         x->sawResponseBytes ? QStringLiteral("connection closed before the response was complete")
                             : QStringLiteral("connection closed before any response"));
}

void Http1Client::onSocketError(Connection *c)
{
    const QAbstractSocket::SocketError e = c->socket->error();
    if (e == QAbstractSocket::RemoteHostClosedError) {
        // disconnected() follows (or came first): onClosed() decides. A reset (ECONNRESET) also lands here.
        if (c->socket->state() == QAbstractSocket::UnconnectedState)
            onClosed(c);
        return;
    }
    Exchange *x = c->exchange;
    if (!x) {
        release(c, false);
        return;
    }
    if (c->socket->bytesAvailable() > 0) {
        const quint64 handle = x->handle;
        c->buffer += c->socket->readAll();
        parse(c);
        if (!m_exchanges.contains(handle))
            return;
    }
    const QString message = c->socket->errorString();
    switch (e) {
    case QAbstractSocket::ConnectionRefusedError: fail(x, ErrorKind::ConnectRefused, message); break;
    case QAbstractSocket::HostNotFoundError: fail(x, ErrorKind::Dns, message); break;
    case QAbstractSocket::SocketTimeoutError:
        fail(x, c->connected ? ErrorKind::Timeout : ErrorKind::ConnectTimeout, message);
        break;
    default:
        if (c->connected && x->phase != Exchange::Phase::Connecting)
            onClosed(c);
        else
            fail(x, ErrorKind::Other, message);
        break;
    }
}

// Parses what is buffered on the connection for its exchange; completes or fails it when it can.
void Http1Client::parse(Connection *c)
{
    Exchange *x = c->exchange;
    QByteArray &buf = c->buffer;
    if (!buf.isEmpty())
        x->sawResponseBytes = true;
    while (c->exchange == x) {
        if (x->phase == Exchange::Phase::Connecting || x->phase == Exchange::Phase::Head) {
            if (buf.isEmpty())
                return;
            // Something that is not HTTP at all fails at once rather than at the deadline.
            const qsizetype probe = std::min<qsizetype>(buf.size(), 5);
            if (!QByteArrayView("HTTP/").startsWith(QByteArrayView(buf.constData(), probe))) {
                fail(x, ErrorKind::Protocol, QStringLiteral("the response is not HTTP"));
                return;
            }
            qsizetype headEnd = -1;
            for (qsizetype from = 0;;) {
                qsizetype contentEnd = 0;
                const qsizetype next = lineAfter(buf, from, &contentEnd);
                if (next < 0)
                    break;
                if (contentEnd == from && from > 0) { // an empty line after the status line: end of the head
                    headEnd = next;
                    break;
                }
                from = next;
            }
            if (headEnd < 0) {
                if (buf.size() > kMaxHeadBytes)
                    fail(x, ErrorKind::Protocol, QStringLiteral("response head over %1 bytes").arg(kMaxHeadBytes));
                return;
            }
            // Status line.
            qsizetype lineEnd = 0;
            qsizetype pos = lineAfter(buf, 0, &lineEnd);
            const QByteArray statusLine = buf.left(lineEnd);
            const QList<QByteArray> parts = statusLine.split(' ');
            bool ok = false;
            const int status = parts.size() >= 2 ? parts[1].toInt(&ok) : 0;
            const QByteArray version = parts.value(0);
            if (!ok || status < 100 || status > 999 || parts[1].size() != 3
                || (version != "HTTP/1.1" && version != "HTTP/1.0")) {
                fail(x, ErrorKind::Protocol, QStringLiteral("invalid status line: %1")
                                                 .arg(QString::fromLatin1(statusLine.left(200))));
                return;
            }
            HttpHeaders headers;
            QByteArray contentLength;
            bool chunked = false;
            bool connClose = false;
            bool connKeepAlive = false;
            int lengths = 0;
            while (pos < headEnd) {
                const qsizetype next = lineAfter(buf, pos, &lineEnd);
                if (lineEnd > pos) {
                    const QByteArray line = buf.mid(pos, lineEnd - pos);
                    const qsizetype colon = line.indexOf(':');
                    if (colon <= 0) {
                        fail(x, ErrorKind::Protocol, QStringLiteral("invalid header line"));
                        return;
                    }
                    const QByteArray name = line.left(colon).trimmed();
                    const QByteArray value = line.mid(colon + 1).trimmed();
                    if (name.compare("Content-Length", Qt::CaseInsensitive) == 0) {
                        if (lengths++ > 0 && value != contentLength) {
                            fail(x, ErrorKind::Protocol, QStringLiteral("conflicting Content-Length headers"));
                            return;
                        }
                        contentLength = value;
                    } else if (name.compare("Transfer-Encoding", Qt::CaseInsensitive) == 0) {
                        chunked = chunked || hasToken(value, "chunked");
                    } else if (name.compare("Connection", Qt::CaseInsensitive) == 0) {
                        connClose = connClose || hasToken(value, "close");
                        connKeepAlive = connKeepAlive || hasToken(value, "keep-alive");
                    }
                    headers.append({name, value});
                }
                pos = next;
            }
            buf.remove(0, headEnd);
            if (status < 200 && status != 101)
                continue; // interim (100 Continue, 103 Early Hints): the real response follows

            x->response.firstByte = MonoClock::now();
            x->response.status = status;
            x->response.protocol = QByteArrayLiteral("http/1.1");
            if (x->request.wantHeaders)
                x->response.headers = std::move(headers);
            x->keepAlive = !connClose && !x->closeAfter && (version == "HTTP/1.1" || connKeepAlive);
            const bool noBody = x->request.method == "HEAD" || status == 204 || status == 304 || status < 200;
            if (noBody) {
                x->framing = Exchange::Framing::None;
            } else if (chunked) {
                x->framing = Exchange::Framing::Chunked;
                x->chunk = Exchange::Chunk::Size;
            } else if (lengths > 0) {
                bool okLength = false;
                const qint64 n = contentLength.toLongLong(&okLength);
                if (!okLength || n < 0) {
                    fail(x, ErrorKind::Protocol, QStringLiteral("invalid Content-Length"));
                    return;
                }
                x->framing = Exchange::Framing::Length;
                x->remaining = n;
            } else {
                x->framing = Exchange::Framing::Close;
                x->keepAlive = false;
            }
            if (status == 101)
                x->keepAlive = false; // we never asked to switch protocols: nothing more to do on it
            x->phase = Exchange::Phase::Body;
            if (x->framing == Exchange::Framing::None
                || (x->framing == Exchange::Framing::Length && x->remaining == 0)) {
                complete(x);
                return;
            }
            continue;
        }

        // Body.
        switch (x->framing) {
        case Exchange::Framing::None: complete(x); return;
        case Exchange::Framing::Close:
            consumeBody(x, buf, buf.size());
            return; // until the server closes
        case Exchange::Framing::Length: {
            const qint64 n = std::min<qint64>(x->remaining, buf.size());
            consumeBody(x, buf, n);
            x->remaining -= n;
            if (x->remaining == 0)
                complete(x);
            return;
        }
        case Exchange::Framing::Chunked:
            switch (x->chunk) {
            case Exchange::Chunk::Size: {
                qsizetype lineEnd = 0;
                const qsizetype next = lineAfter(buf, 0, &lineEnd);
                if (next < 0) {
                    if (buf.size() > kMaxChunkLine)
                        fail(x, ErrorKind::Protocol, QStringLiteral("chunk size line too long"));
                    return;
                }
                QByteArray sizeText = buf.left(lineEnd);
                const qsizetype semicolon = sizeText.indexOf(';');
                if (semicolon >= 0)
                    sizeText.truncate(semicolon);
                sizeText = sizeText.trimmed();
                bool ok = false;
                const qint64 size = sizeText.toLongLong(&ok, 16);
                if (!ok || size < 0 || sizeText.isEmpty()) {
                    fail(x, ErrorKind::Protocol, QStringLiteral("invalid chunk size"));
                    return;
                }
                buf.remove(0, next);
                x->remaining = size;
                x->chunk = size == 0 ? Exchange::Chunk::Trailer : Exchange::Chunk::Data;
                break;
            }
            case Exchange::Chunk::Data: {
                if (buf.isEmpty())
                    return;
                const qint64 n = std::min<qint64>(x->remaining, buf.size());
                consumeBody(x, buf, n);
                x->remaining -= n;
                if (x->remaining == 0)
                    x->chunk = Exchange::Chunk::DataEnd;
                break;
            }
            case Exchange::Chunk::DataEnd:
                if (buf.startsWith("\r\n")) {
                    buf.remove(0, 2);
                } else if (buf.startsWith('\n')) {
                    buf.remove(0, 1);
                } else if (buf.isEmpty() || buf == "\r") {
                    return;
                } else {
                    fail(x, ErrorKind::Protocol, QStringLiteral("chunk not followed by CRLF"));
                    return;
                }
                x->chunk = Exchange::Chunk::Size;
                break;
            case Exchange::Chunk::Trailer: {
                qsizetype lineEnd = 0;
                const qsizetype next = lineAfter(buf, 0, &lineEnd);
                if (next < 0) {
                    if (buf.size() > kMaxChunkLine)
                        fail(x, ErrorKind::Protocol, QStringLiteral("trailer line too long"));
                    return;
                }
                const bool last = lineEnd == 0;
                buf.remove(0, next);
                if (last) {
                    complete(x);
                    return;
                }
                break;
            }
            }
            break;
        }
    }
}

void Http1Client::consumeBody(Exchange *x, QByteArray &buffer, qint64 n)
{
    if (n <= 0)
        return;
    x->response.bytesReceived += n;
    if (x->request.wantBody)
        x->response.body.append(buffer.constData(), qsizetype(n));
    if (n == buffer.size())
        buffer.clear();
    else
        buffer.remove(0, qsizetype(n));
}

void Http1Client::complete(Exchange *x)
{
    Connection *c = x->conn;
    x->response.end = MonoClock::now();
    x->response.error = ErrorKind::None;
    if (c) {
        // Reusable only when the response said so, is whole, and nothing else came after it.
        const bool reusable = x->keepAlive && c->buffer.isEmpty()
                              && c->socket->state() == QAbstractSocket::ConnectedState;
        c->exchange = nullptr;
        x->conn = nullptr;
        c->reused = true;
        release(c, reusable);
    }
    deliver(x);
}

void Http1Client::fail(Exchange *x, ErrorKind kind, const QString &message)
{
    Connection *c = x->conn;
    x->response.end = MonoClock::now();
    x->response.error = kind;
    x->response.errorMessage = message;
    // A failed exchange has no valid status: transport errors carry none (sum(status_codes) counts responses).
    x->response.status = 0;
    x->response.protocol.clear();
    if (c) {
        c->exchange = nullptr;
        x->conn = nullptr;
        release(c, false);
    }
    deliver(x);
}

// Hands the outcome back, never from inside send() or a socket's signal: the callback may send again.
void Http1Client::deliver(Exchange *x)
{
    x->finished = true;
    m_exchanges.remove(x->handle);
    x->deadline->stop();
    x->deadline->deleteLater();
    x->deadline = nullptr;
    QMetaObject::invokeMethod(
        this,
        [done = std::move(x->done), r = std::move(x->response)]() mutable { done(std::move(r)); },
        Qt::QueuedConnection);
    delete x;
}

// A connection leaves its exchange: back to its vUser's idle list, or closed.
void Http1Client::release(Connection *c, bool reusable)
{
    m_busy.erase(std::remove(m_busy.begin(), m_busy.end(), c), m_busy.end());
    const quint64 affinity = c->affinity;
    auto &idle = m_idle[affinity];
    idle.erase(std::remove(idle.begin(), idle.end(), c), idle.end());
    if (!reusable) {
        destroy(c);
        if (idle.empty())
            m_idle.remove(affinity);
        return;
    }
    idle.push_back(c);
    if (idle.size() > kMaxIdlePerVu) {
        Connection *oldest = idle.front();
        idle.erase(idle.begin());
        destroy(oldest);
    }
}

void Http1Client::destroy(Connection *c)
{
    m_busy.erase(std::remove(m_busy.begin(), m_busy.end(), c), m_busy.end());
    QTcpSocket *socket = c->socket;
    socket->disconnect(this);
    socket->abort();
    socket->deleteLater(); // we may be inside one of its signals
    delete c;
}

void Http1Client::abortWith(quint64 handle, ErrorKind kind)
{
    Exchange *x = m_exchanges.value(handle);
    if (!x || x->finished)
        return;
    // Whatever already arrived still counts (bytes of a timed-out body).
    if (x->conn && x->conn->socket->bytesAvailable() > 0) {
        Connection *c = x->conn;
        c->buffer += c->socket->readAll();
        parse(c);
        if (!m_exchanges.contains(handle))
            return; // those bytes finished it
    }
    if (kind == ErrorKind::Timeout)
        fail(x, kind, QStringLiteral("no complete response within the timeout"));
    else if (kind == ErrorKind::ConnectTimeout)
        fail(x, kind, QStringLiteral("no connection within the timeout"));
    else
        fail(x, kind, QStringLiteral("interrupted by the end of the run"));
}

void Http1Client::cancel(quint64 handle)
{
    // Deferred, like every callback.
    if (!m_exchanges.contains(handle))
        return;
    QMetaObject::invokeMethod(this, [this, handle] { abortWith(handle, ErrorKind::Interrupted); }, Qt::QueuedConnection);
}

ConfigErrors HttpProtocolPlugin::validate(const json &config) const
{
    ConfigErrors errors;
    ConfigChecker c(&errors);
    if (config.contains("protocol"))
        c.object(config["protocol"], QStringLiteral("protocol"), {"plugin"});
    if (config.contains("target") && config["target"].is_object() && config["target"].contains("tls")) {
        const json &tls = config["target"]["tls"];
        if (tls.is_object() && tls.contains("ca_file") && tls["ca_file"].is_string()) {
            const QString path = QString::fromStdString(tls["ca_file"].get<std::string>());
            if (QSslCertificate::fromPath(path).isEmpty())
                c.error(QStringLiteral("target.tls.ca_file"), QStringLiteral("no PEM certificate could be read from %1").arg(path));
        }
    }
    return errors;
}

std::unique_ptr<IProtocolClient> HttpProtocolPlugin::createClient(const ProtocolOptions &options)
{
    return std::make_unique<HttpClient>(options.config);
}

} // namespace Userflux::Plugins
