from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from support.conversations.consumers import ChatConsumer

# The chat socket is opened from customers' websites: besides this server's own hosts, the origins in
# TANDEM_WIDGET_ORIGINS may connect; any other page's origin is refused (HTTP 403).
websocket_urlpatterns = [
    path(
        "ws/chat/", OriginValidator(ChatConsumer.as_asgi(), [*settings.ALLOWED_HOSTS, *settings.TANDEM_WIDGET_ORIGINS])
    ),
]
