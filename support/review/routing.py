from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from support.review.consumers import StaffConsumer

# Agents' pages are this server's own: no other origin may open the staff socket, not even a website
# allowed to embed the chat (a page there could otherwise ride an agent's session cookie).
websocket_urlpatterns = [
    path("ws/staff/", OriginValidator(StaffConsumer.as_asgi(), list(settings.ALLOWED_HOSTS))),
]
