"""HTTP clients for Login with Amazon and the Amazon Marketing Cloud reporting API."""

from shared.clients.amc import AmcClient
from shared.clients.amc_models import (
    AmcAccount,
    AmcAccountInfo,
    AmcInstanceInfo,
    AmcStatus,
    ChannelStatus,
    DownloadUrls,
    ExecutionInfo,
    ExecutionOptions,
    ExecutionPage,
    ExecutionRequest,
    OutputChannel,
    SavedWorkflow,
)
from shared.clients.errors import (
    ApiError,
    ClientRequestError,
    InvalidGrantError,
    RateLimitedError,
    ResultsExpiredError,
    ServerError,
    TransportError,
    UnauthorizedError,
)
from shared.clients.lwa import (
    LWA_AUTHORIZE_URLS,
    LWA_TOKEN_HOSTS,
    LwaClient,
    LwaRegion,
    LwaTokens,
)

__all__ = [
    "LWA_AUTHORIZE_URLS",
    "LWA_TOKEN_HOSTS",
    "AmcAccount",
    "AmcAccountInfo",
    "AmcClient",
    "AmcInstanceInfo",
    "AmcStatus",
    "ApiError",
    "ChannelStatus",
    "ClientRequestError",
    "DownloadUrls",
    "ExecutionInfo",
    "ExecutionOptions",
    "ExecutionPage",
    "ExecutionRequest",
    "InvalidGrantError",
    "LwaClient",
    "LwaRegion",
    "LwaTokens",
    "OutputChannel",
    "RateLimitedError",
    "ResultsExpiredError",
    "SavedWorkflow",
    "ServerError",
    "TransportError",
    "UnauthorizedError",
]
