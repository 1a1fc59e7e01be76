"""The reader's comment form."""

from django import forms

from .models import Comment


class CommentForm(forms.ModelForm):
    """A comment's body; the view supplies the article and the user."""

    body = forms.CharField(
        label="Your comment",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
    )

    class Meta:
        model = Comment
        fields = ["body"]
