# Satterthwaite denominator df and p-values as lmerTest's summary (issue 14, item 2):
#   Rscript tests/reference/R/satterthwaite_cases.R tests/reference/local
suppressPackageStartupMessages({library(lmerTest); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
unbalanced <- sleepstudy[-c(3, 17, 40, 41, 42, 90, 131, 170), ]
unbalanced$cDays <- unbalanced$Days - 4.5
cases <- list(
  list(name = "sleep_REML", data = "sleepstudy", drop = integer(0), REML = TRUE,
       formula = Reaction ~ Days + (Days | Subject)),
  list(name = "sleep_ML", data = "sleepstudy", drop = integer(0), REML = FALSE,
       formula = Reaction ~ Days + (Days | Subject)),
  list(name = "sleep_unbalanced_REML", data = "sleepstudy", drop = c(3, 17, 40, 41, 42, 90, 131, 170),
       REML = TRUE, formula = Reaction ~ Days + I(Days^2) + (1 | Subject) + (0 + Days | Subject)),
  list(name = "penicillin_REML", data = "Penicillin", drop = integer(0), REML = TRUE,
       formula = diameter ~ 1 + (1 | plate) + (1 | sample))
)
res <- list()
for (case in cases) {
  d <- get(case$data)
  if (length(case$drop)) d <- d[-case$drop, ]
  m <- lmer(case$formula, data = d, REML = case$REML)
  co <- coef(summary(m, ddf = "Satterthwaite"))          # summary(m)$coefficients
  res[[case$name]] <- list(
    data = case$data, drop = case$drop, REML = case$REML,
    formula = paste(deparse(case$formula, width.cutoff = 500), collapse = " "),
    terms = rownames(co), estimate = unname(co[, "Estimate"]),
    std_error = unname(co[, "Std. Error"]), df = unname(co[, "df"]),
    t = unname(co[, "t value"]), p = unname(co[, "Pr(>|t|)"])
  )
}
res$software <- list(R = R.version.string, lmerTest = as.character(packageVersion("lmerTest")))
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "satterthwaite.json"))
