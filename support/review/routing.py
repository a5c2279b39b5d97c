from channels.auth import AuthMiddlewareStack
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from support.review.consumers import StaffConsumer

# Agents' pages are this server's own: no other origin may open the staff socket, not even a website
# allowed to embed the chat (a page there could otherwise ride an agent's session cookie).
# The session and the user are read here only, after the origin check: for the chat socket, that
# read was a trip through the server's one database thread on every handshake, a refused one included.
websocket_urlpatterns = [
    path("ws/staff/", OriginValidator(AuthMiddlewareStack(StaffConsumer.as_asgi()), list(settings.ALLOWED_HOSTS))),
]
