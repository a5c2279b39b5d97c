"""ASGI entry point: HTTP through Django (static files included), WebSockets through Channels."""

import gc
import os
import threading

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "support.settings")
# Django must be set up before the consumers (and their models) are imported.
django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from chatbot.small.model import warm_up_small_model  # noqa: E402
from support.conversations.routing import websocket_urlpatterns  # noqa: E402
from support.review.routing import websocket_urlpatterns as staff_websocket_urlpatterns  # noqa: E402
from support.sqlite_wal import start_checkpointer  # noqa: E402


def _warm_up() -> None:
    warm_up_small_model()
    start_checkpointer()
    # Everything loaded so far (Django, the tokenizer, the model's tables) lives as long as the process:
    # moved out of the collector's sight, so a full collection no longer walks it in the middle of a
    # customer's message.
    gc.freeze()


# Load the small model now, beside the starting server, rather than on the first customer's message.
threading.Thread(target=_warm_up, name="warm-up-small-model", daemon=True).start()

application = ProtocolTypeRouter(
    {
        # The widget's script and styles are served by this process too, so one command runs it all.
        "http": ASGIStaticFilesHandler(django_http),
        # Each socket checks its own allowed origins (the routing modules): the chat socket accepts the
        # customers' websites, the staff socket this server only. Only the staff socket reads the
        # session and the user (support/review/routing.py): the customers' socket has no use for them.
        "websocket": URLRouter([*websocket_urlpatterns, *staff_websocket_urlpatterns]),
    }
)
