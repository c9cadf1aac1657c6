"""Components of learning-rate schedules: built-in Keras schedules and `import` of your own."""
