# lmerTest's single-model anova (type III, Satterthwaite) (issue 14, item 2):
#   Rscript tests/reference/R/anova_type3_cases.R tests/reference/local
suppressPackageStartupMessages({library(lmerTest); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
cbpp2 <- transform(cbpp, rate = incidence / size)
cases <- list(
  list(name = "sleep", d = sleepstudy, data = "sleepstudy",
       formula = Reaction ~ Days + I(Days^2) + (Days | Subject)),
  list(name = "cbpp_period", d = cbpp2, data = "cbpp", formula = rate ~ period + size + (1 | herd))
)
res <- list()
for (case in cases) {
  m <- lmer(case$formula, data = case$d)
  a <- anova(m)                                              # anova(m): type III
  res[[case$name]] <- list(
    data = case$data, formula = paste(deparse(case$formula, width.cutoff = 500), collapse = " "),
    terms = rownames(a), SumSq = a[["Sum Sq"]], MeanSq = a[["Mean Sq"]], NumDF = a$NumDF,
    DenDF = a$DenDF, F = a[["F value"]], p = a[["Pr(>F)"]]
  )
}
res$software <- list(R = R.version.string, lmerTest = as.character(packageVersion("lmerTest")))
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "anova_type3.json"))

# type III with interaction terms (lmerTest's contrasts orthogonal to the containing terms)
ie <- InstEval[1:3000, ]
inter <- list(
  list(name = "cbpp_interaction", d = cbpp2, data = "cbpp", rows = 0,
       formula = rate ~ period * size + (1 | herd)),
  list(name = "insteval_interaction", d = ie, data = "InstEval", rows = 3000,
       formula = y ~ service * studage + (1 | s))
)
res2 <- list()
for (case in inter) {
  m <- lmer(case$formula, data = case$d)
  a <- anova(m)
  res2[[case$name]] <- list(
    data = case$data, rows = case$rows,
    formula = paste(deparse(case$formula, width.cutoff = 500), collapse = " "),
    terms = rownames(a), SumSq = a[["Sum Sq"]], NumDF = a$NumDF, DenDF = a$DenDF,
    F = a[["F value"]], p = a[["Pr(>F)"]]
  )
}
writeLines(toJSON(res2, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "anova_type3_interactions.json"))
