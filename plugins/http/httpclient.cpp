#include "httpclient.h"

#include <userflux/configcheck.h>

#include <QFile>
#include <QNetworkProxy>
#include <QNetworkReply>
#include <QSslCertificate>
#include <QTimer>

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
    return std::make_unique<QnamClient>(options.config);
}

} // namespace Userflux::Plugins
