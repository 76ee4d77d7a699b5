"""HTTP clients for Login with Amazon and the Amazon Marketing Cloud reporting API."""

from shared.clients.amc import (
    AmcAccount,
    AmcAccountInfo,
    AmcClient,
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
from shared.clients.lwa import LwaClient, LwaTokens

__all__ = [
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
    "LwaTokens",
    "OutputChannel",
    "RateLimitedError",
    "ResultsExpiredError",
    "SavedWorkflow",
    "ServerError",
    "TransportError",
    "UnauthorizedError",
]
