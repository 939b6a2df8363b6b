// userfluxctl: thin entry point over Userflux::Ctl (cli/ctl/ctl.h).
#include "ctl.h"

#include <QCoreApplication>

#include <QCoroTask>

#include <csignal>

int main(int argc, char *argv[])
{
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("userfluxctl"));
    QCoreApplication::setApplicationVersion(QStringLiteral(USERFLUX_VERSION));
    // A closed pipe (userfluxctl list | head) must end quietly, not with SIGPIPE noise from the daemon socket.
    std::signal(SIGPIPE, SIG_IGN);
    Userflux::Ctl ctl;
    return QCoro::waitFor(ctl.run(QCoreApplication::arguments()));
}
