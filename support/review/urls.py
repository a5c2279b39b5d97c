from django.urls import path

from support.review import views

urlpatterns = [
    path("", views.queue, name="review-queue"),
    path("snippets/", views.snippets, name="review-snippets"),
    path("checks/", views.spot_checks, name="review-checks"),
    path("checks/label/", views.check, name="review-check"),
    path("<uuid:conversation_id>/", views.detail, name="review-detail"),
    path("<uuid:conversation_id>/reply/", views.reply, name="review-reply"),
    path("<uuid:conversation_id>/take-over/", views.take_over, name="review-take-over"),
    path("<uuid:conversation_id>/hand-back/", views.hand_back, name="review-hand-back"),
    path("<uuid:conversation_id>/close/", views.close, name="review-close"),
    path("<uuid:conversation_id>/assign/", views.assign, name="review-assign"),
    path("<uuid:conversation_id>/notes/", views.note, name="review-note"),
    path("<uuid:conversation_id>/label/", views.label, name="review-label"),
    path("<uuid:conversation_id>/drafts/approve/", views.approve_draft, name="review-draft-approve"),
    path("<uuid:conversation_id>/drafts/send-edited/", views.send_edited_draft, name="review-draft-send-edited"),
    path("<uuid:conversation_id>/drafts/reject/", views.reject_draft, name="review-draft-reject"),
]
